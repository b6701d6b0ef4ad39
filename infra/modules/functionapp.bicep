// The Function App on Flex Consumption (FC1, Python 3.11) with a system-assigned
// managed identity, and every app setting it gets. The app settings live in one place,
// the `appsettings` resource below; tests/infra compares its keys with the settings the
// code reads (shared/settings.py), so add a setting there and here together.
// Flex Consumption takes runtime, version and package location from functionAppConfig,
// and rejects FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and
// WEBSITE_RUN_FROM_PACKAGE as app settings.
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan
// https://learn.microsoft.com/azure/azure-functions/functions-app-settings

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Name of the Flex Consumption plan.')
param planName string

@description('Name of the Function App.')
param name string

@description('Storage account holding the app\'s data (the DataStorage connection).')
param dataStorageAccountName string

@description('Blob endpoint of the data account (https://<name>.blob.core.windows.net/).')
param dataBlobEndpoint string

@description('Queue endpoint of the data account (https://<name>.queue.core.windows.net/).')
param dataQueueEndpoint string

@description('Storage account of the Functions host itself (AzureWebJobsStorage).')
param hostStorageAccountName string

@description('URL of the blob container (in the host\'s account) Flex Consumption deploys the package into.')
param deploymentContainerUrl string

@description('Application Insights connection string (not a secret: local auth is off).')
param applicationInsightsConnectionString string

@description('Application (client) id of the product\'s multi-tenant Entra app registration.')
param entraClientId string

@description('Versionless Key Vault URI of the client secret.')
param entraClientSecretUri string

@description('Versionless Key Vault URI of the consent-state signing key.')
param stateSigningKeySecretUri string

@description('Public https base URL the consent redirect URI and Graph webhook URLs are built from.')
param publicBaseUrl string

@description('Admin page URL the consent callback returns to.')
param adminPageUrl string

@description('Blob container the CSV import watches.')
param uploadsContainerName string

@description('NCRONTAB schedule of the connector timer.')
param connectSchedule string

@description('Role an administrator has (assigned in the Static Web App).')
param adminRole string

@description('Seconds a background run works before it stops claiming new work.')
@minValue(10)
@maxValue(3600)
param functionTimeLimitSeconds int

@description('Longest booking the bookings API writes, in hours.')
param maxBookingHours int

@description('Days before today whose bookings are kept.')
param syncDaysBack int

@description('Days after today whose bookings are kept.')
param syncDaysAhead int

@description('NCRONTAB schedule of the sync sweep.')
param syncSweepSchedule string

@description('Most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of one instance.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy of a Flex Consumption plan is an availability choice offered in some regions only, not a security control; this product's work is restartable (timer and blob receipts) and the state is in zone-redundant storage.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: A Function App linked to a Static Web App must stay publicly reachable (no IP restrictions, no private endpoint); App Service Authentication (backend-link.bicep) admits only the Static Web App and the listed bookings client applications, and Event Grid's webhook call carries the blobs_extension system key.
  // checkov:skip=CKV_AZURE_17: Incoming client certificates: the callers (the Static Web App proxy, the bookings clients, Event Grid) present none; they are authenticated by App Service Authentication (Entra ID bearer tokens) and the system key instead.
  // checkov:skip=CKV_AZURE_212: A minimum instance count for failover applies to dedicated plans; Flex Consumption scales instances per demand and from zero by design.
  // checkov:skip=CKV_AZURE_213: Health-check instance eviction is a feature of long-running App Service instances; on Flex Consumption the platform manages instances. /api/health is reachable anonymously through the Static Web App for an availability test.
  name: name
  location: location
  // azd finds the resource to deploy the `api` service to by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Publishing with a user name and password is off; azd deploys with Entra ID.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Checkov reads every sites/config resource as the site itself; this one holds app settings only (the site's public access is justified on the site above).
  // checkov:skip=CKV_AZURE_13: Checkov reads every sites/config resource as the site itself; authentication is set in authsettingsV2 (backend-link.bicep), not in app settings.
  parent: site
  name: 'appsettings'
  properties: {
    // --- read by the app (shared/settings.py) ---
    // The data account by name, reached with the managed identity. The connection
    // string setting `DataStorage` stays unset in Azure: shared keys are off.
    DataStorage__accountName: dataStorageAccountName
    ENTRA_CLIENT_ID: entraClientId
    ENTRA_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${entraClientSecretUri})'
    STATE_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${stateSigningKeySecretUri})'
    PUBLIC_BASE_URL: publicBaseUrl
    ADMIN_PAGE_URL: adminPageUrl
    ADMIN_ROLE: adminRole
    // Microsoft's endpoints, written out so the deployed configuration is explicit; the
    // sign-in endpoint follows the cloud the template is deployed to.
    LOGIN_BASE_URL: environment().authentication.loginEndpoint
    GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0'
    CONNECT_SCHEDULE: connectSchedule
    UPLOADS_CONTAINER: uploadsContainerName
    FUNCTION_TIME_LIMIT_SECONDS: string(functionTimeLimitSeconds)
    MAX_BOOKING_HOURS: string(maxBookingHours)
    SYNC_DAYS_BACK: string(syncDaysBack)
    SYNC_DAYS_AHEAD: string(syncDaysAhead)
    SYNC_SWEEP_SCHEDULE: syncSweepSchedule

    // --- read by the Functions host, not by the app ---
    // Connection `DataStorage` of the blob and queue triggers, identity based (queues:
    // calendar-changes and the poison queues, which live in the triggering account).
    // https://learn.microsoft.com/azure/azure-functions/functions-reference#configure-an-identity-based-connection
    DataStorage__blobServiceUri: dataBlobEndpoint
    DataStorage__queueServiceUri: dataQueueEndpoint
    DataStorage__credential: 'managedidentity'
    // The host's own storage (leases, timers, keys, the blob trigger's internal queue), in
    // its own account so that the app's data account needs no account-wide blob role.
    // https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity
    AzureWebJobsStorage__accountName: hostStorageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    // Telemetry is sent with the managed identity because the component's local auth is off.
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  }
}

output id string = site.id
output name string = site.name
output location string = site.location
output defaultHostname string = site.properties.defaultHostName
output principalId string = site.identity.principalId
