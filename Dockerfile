# The KPay worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md kpay.py ./
COPY kpay_faust ./kpay_faust
RUN pip install --no-cache-dir .
EXPOSE 6066
CMD ["faust", "-A", "kpay", "worker", "-l", "info"]
