// One Storage account, Entra ID only: shared keys are off, so no connection string
// exists anywhere. main.bicep uses this module twice:
// - the app's data account: its tables (created by the app at run time), the blob
//   containers and queues listed in containerNames / queueNames (created here, because
//   the app's identity is granted roles on each of them only, see roles.bicep);
// - the Functions host's own account (AzureWebJobsStorage): leases, keys, the blob
//   trigger's internal queue and the Flex Consumption deployment container. Keeping it
//   apart is what lets the app's data get narrow roles while the host keeps the
//   account-wide roles Microsoft documents for it.
// https://learn.microsoft.com/azure/azure-functions/storage-considerations
// https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Storage account name (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Blob containers to create (private).')
param containerNames array

@description('Queues to create.')
param queueNames array

@description('Days deleted blobs and containers can be restored.')
@minValue(1)
@maxValue(365)
param deleteRetentionDays int = 7

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  // checkov:skip=CKV_AZURE_35: The Function App has no virtual network (Flex Consumption without VNet integration), so it reaches storage over the public endpoint; every request needs an Entra ID token (shared keys are off) and an RBAC role.
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public network access is needed without a VNet; authorization is Entra ID + RBAC only. docs/deploy.md describes the private-endpoint hardening.
  sku: {
    // Geo-zone-redundant: the app's state (accounts, calendars, consent) survives a zone
    // outage and can be failed over to the paired region.
    name: 'Standard_GZRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in containerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
