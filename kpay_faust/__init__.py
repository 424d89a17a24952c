"""KPay: payments as events through Faust stages on Apache Kafka."""
