"""Azure Storage (Azurite locally): queues, tables and the report blob (account), per-user leases, the shared
Graph write budget, and what the sweep keeps between runs."""
