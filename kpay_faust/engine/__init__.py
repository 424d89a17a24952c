"""KPay's engine: everything that adapts Faust and aiokafka to what a payment system needs.

It imports no pillar. Every private internal of faust-streaming, aiokafka and mode it touches is
named in ``compat`` and checked by ``tests/unit/test_library_contract.py``.

    app          KPayApp: the classes below, owned topics, ``emit``
    consumer     commits before revocation, rewinds uncommitted partitions, the fetch loop
    fetching     fetch wait and size; pacing of fetches and batches that follows the load
    delivery     records handed to agents inline, never recorded as read across a seek
    producer     table writes and stage outputs in batches; flush drains them first
    table        raw UTF-8 keys, batched changelog, cached values
    stores       one block cache and one memtable budget for all RocksDB stores of a worker
    stages       the stage runner: per-event failures, batches of what has arrived
    pausing      partitions paused in the Kafka client
    restore      changelogs read back into RocksDB in bulk before Faust's recovery
    clients      stopping KPay's own aiokafka clients
    local_state  which local stores survive a crash (checkpointed ones)
    worker       KPayWorker: local state, quiet logging, frozen start-up objects
    compat       every private contact and the version guard
"""
