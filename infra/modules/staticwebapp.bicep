// The Static Web App serving the admin page (web/). Standard plan: a linked backend
// (backend-link.bicep) and custom roles need it. Sign-in is the Static Web App's own
// (Microsoft Entra ID); who is an administrator is set by role invitations, and
// web/staticwebapp.config.json decides which routes need which role.
// https://learn.microsoft.com/azure/static-web-apps/plans

@description('Static Web Apps region (the service runs in a few regions only).')
@allowed(['centralus', 'eastasia', 'eastus2', 'westeurope', 'westus2'])
param location string

@description('Tags for every resource.')
param tags object

@description('Name of the Static Web App.')
param name string

resource site 'Microsoft.Web/staticSites@2024-04-01' = {
  name: name
  location: location
  // azd finds the resource to deploy the `web` service to by this tag.
  tags: union(tags, { 'azd-service-name': 'web' })
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    // azd deploys the files; no GitHub workflow is generated.
    provider: 'Custom'
    allowConfigFileUpdates: true
    // Pull-request environments cannot use a linked backend.
    stagingEnvironmentPolicy: 'Disabled'
    publicNetworkAccess: 'Enabled'
  }
}

output id string = site.id
output name string = site.name
output defaultHostname string = site.properties.defaultHostname
