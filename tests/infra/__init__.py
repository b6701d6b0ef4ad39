"""Checks of the Azure deployment: infra/ (Bicep), azure.yaml and web/staticwebapp.config.json."""
