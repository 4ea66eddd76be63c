"""The outside world behind small adapters: Microsoft Graph (graph/), Azure Storage (storage/), telemetry.

Only graph/ imports msgraph; only storage/ imports the Azure Storage SDKs. Adapters import the core, never a use
case, a trigger or the CLI.
"""
