"""Deployment as code: the Bicep, azure.yaml and the Graph grant script, checked against what the code reads."""
