// Room Calendar Connector in Azure: what `azd up` provisions. Composes modules/, one
// resource family each. Names follow one convention: the resource type's abbreviation
// followed by a token unique to the subscription, environment and region.
// Secrets come in as secure parameters (never with a default) and go only into Key Vault.
// See docs/deploy.md.
targetScope = 'subscription'

@description('Name of the azd environment; part of every resource name.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Region of every resource except the Static Web App.')
@minLength(1)
@metadata({ azd: { type: 'location' } })
param location string

@description('Region of the Static Web App (the service runs in a few regions only).')
@allowed(['centralus', 'eastasia', 'eastus2', 'westeurope', 'westus2'])
param staticWebAppLocation string = 'westeurope'

@description('Application (client) id of the product\'s multi-tenant Entra app registration.')
@minLength(36)
@maxLength(36)
param entraClientId string

@description('Client secret of that app registration; stored in Key Vault only.')
@secure()
param entraClientSecret string

@description('Key that signs admin-consent state; azd generates it once per environment.')
@secure()
@minLength(32)
@metadata({ azd: { type: 'generate', config: { length: 64, noSpecial: true } } })
param stateSigningKey string

@description('Blob container the CSV import watches.')
param uploadsContainerName string = 'calendar-uploads'

@description('Directory (tenant) id of the product\'s home tenant (where the app registration lives and the bookings roles are granted); empty: this subscription\'s tenant.')
param entraTenantId string = ''

@description('Comma-separated client ids of the workplace system\'s applications allowed to call the bookings API with their own tokens; empty: none.')
param bookingsClientAppIds string = ''

@description('NCRONTAB schedule of the connector timer (UTC).')
param connectSchedule string = '0 */15 * * * *'

@description('Static Web Apps role that may use the admin page and API.')
param adminRole string = 'administrator'

@description('Seconds a background run works before it stops claiming new work (below the 10 min functionTimeout).')
@minValue(10)
@maxValue(3600)
param functionTimeLimitSeconds int = 480

@description('Longest booking the bookings API writes, in hours.')
@minValue(1)
@maxValue(336)
param maxBookingHours int = 24

@description('Days before today whose bookings are kept.')
@minValue(0)
@maxValue(31)
param syncDaysBack int = 1

@description('Days after today whose bookings are kept.')
@minValue(1)
@maxValue(730)
param syncDaysAhead int = 180

@description('NCRONTAB schedule of the sync sweep (UTC).')
param syncSweepSchedule string = '0 5 * * * *'

var abbreviations = {
  resourceGroup: 'rg-'
  functionApp: 'func-'
  flexPlan: 'plan-'
  storageAccount: 'st'
  hostStorageAccount: 'stfunc'
  keyVault: 'kv-'
  logAnalytics: 'log-'
  applicationInsights: 'appi-'
  staticWebApp: 'stapp-'
  eventGridSystemTopic: 'egst-'
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var homeTenantId = empty(entraTenantId) ? subscription().tenantId : entraTenantId
// A string, not an array, so that any azd version can pass it from the environment.
var bookingsClientIds = filter(split(replace(bookingsClientAppIds, ' ', ''), ','), clientId => !empty(clientId))

// Blob containers and queues of the app's data, created here (storage.bicep) because the
// app's identity gets roles on each of them only (roles.bicep); the app creates them
// itself only against Azurite. The names are the app's (shared/) and the host's.
var reportsContainerName = 'import-reports'
var calendarChangesQueueName = 'calendar-changes'
// The host moves a queue message to `<queue>-poison` after its last try, and a blob that
// failed five times to `webjobs-blobtrigger-poison` in the triggering blob's account.
// https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger#poison-messages
// https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#poison-blobs
var calendarChangesPoisonQueueName = '${calendarChangesQueueName}-poison'
var blobTriggerPoisonQueueName = 'webjobs-blobtrigger-poison'
var deploymentContainerName = 'app-package'
var staticWebAppUrl = 'https://${staticWebApp.outputs.defaultHostname}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbreviations.resourceGroup}${environmentName}'
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: '${abbreviations.logAnalytics}${resourceToken}'
    applicationInsightsName: '${abbreviations.applicationInsights}${resourceToken}'
  }
}

// The app's data: tables, uploads, reports, the change queue and the poison queues.
module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbreviations.storageAccount}${resourceToken}'
    containerNames: [
      uploadsContainerName
      reportsContainerName
    ]
    queueNames: [
      calendarChangesQueueName
      calendarChangesPoisonQueueName
      blobTriggerPoisonQueueName
    ]
  }
}

// The Functions host's own storage (AzureWebJobsStorage) and the deployment package.
module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbreviations.hostStorageAccount}${resourceToken}'
    containerNames: [
      deploymentContainerName
    ]
    queueNames: []
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbreviations.keyVault}${resourceToken}'
    entraClientSecret: entraClientSecret
    stateSigningKey: stateSigningKey
  }
}

module staticWebApp 'modules/staticwebapp.bicep' = {
  name: 'staticwebapp'
  scope: rg
  params: {
    location: staticWebAppLocation
    tags: tags
    name: '${abbreviations.staticWebApp}${resourceToken}'
  }
}

// PUBLIC_BASE_URL is the Static Web App's URL, not the Function App's: every HTTP
// request, the consent redirect and Graph's webhooks included, enters through the
// Static Web App, which proxies /api to the Function App (backend-link.bicep). The
// Function App itself accepts HTTP only from the Static Web App and from the listed
// bookings client applications (Entra ID tokens), see backend-link.bicep.
module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    location: location
    tags: tags
    planName: '${abbreviations.flexPlan}${resourceToken}'
    name: '${abbreviations.functionApp}${resourceToken}'
    dataStorageAccountName: storage.outputs.name
    dataBlobEndpoint: storage.outputs.blobEndpoint
    dataQueueEndpoint: storage.outputs.queueEndpoint
    hostStorageAccountName: hostStorage.outputs.name
    deploymentContainerUrl: '${hostStorage.outputs.blobEndpoint}${deploymentContainerName}'
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    entraClientId: entraClientId
    entraClientSecretUri: keyVault.outputs.entraClientSecretUri
    stateSigningKeySecretUri: keyVault.outputs.stateSigningKeySecretUri
    publicBaseUrl: staticWebAppUrl
    adminPageUrl: '${staticWebAppUrl}/'
    uploadsContainerName: uploadsContainerName
    connectSchedule: connectSchedule
    adminRole: adminRole
    functionTimeLimitSeconds: functionTimeLimitSeconds
    maxBookingHours: maxBookingHours
    syncDaysBack: syncDaysBack
    syncDaysAhead: syncDaysAhead
    syncSweepSchedule: syncSweepSchedule
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    principalId: functionApp.outputs.principalId
    hostStorageAccountName: hostStorage.outputs.name
    dataStorageAccountName: storage.outputs.name
    dataContainerNames: [
      uploadsContainerName
      reportsContainerName
    ]
    readWriteQueueNames: [
      calendarChangesQueueName
    ]
    sendOnlyQueueNames: [
      calendarChangesPoisonQueueName
      blobTriggerPoisonQueueName
    ]
    keyVaultName: keyVault.outputs.name
    secretNames: keyVault.outputs.secretNames
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module backendLink 'modules/backend-link.bicep' = {
  name: 'backend-link'
  scope: rg
  params: {
    staticWebAppName: staticWebApp.outputs.name
    functionAppName: functionApp.outputs.name
    functionAppLocation: functionApp.outputs.location
    entraClientId: entraClientId
    entraTenantId: homeTenantId
    bookingsClientAppIds: bookingsClientIds
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbreviations.eventGridSystemTopic}${resourceToken}'
    storageAccountId: storage.outputs.id
  }
}

// azd stores these in the environment (.azure/<env>/.env); the hooks and docs use them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STATIC_WEB_APP_NAME string = staticWebApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output UPLOADS_CONTAINER string = uploadsContainerName
output PUBLIC_BASE_URL string = staticWebAppUrl
output ADMIN_PAGE_URL string = '${staticWebAppUrl}/'
// Register exactly this as the Entra app's Web redirect URI.
output CONSENT_REDIRECT_URI string = '${staticWebAppUrl}/api/consent/callback'
// The bookings API's callers use the Function App's own host name and tokens for this audience.
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostname}'
output BOOKINGS_API_AUDIENCE string = 'api://${entraClientId}'
