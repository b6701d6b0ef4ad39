// What the Function App's managed identity may do, and nothing broader. The host and the
// app's code share that identity, so the two storage accounts are what keeps them apart:
//
// Functions host's account (AzureWebJobsStorage), account scope, as Microsoft documents
// for host storage with an identity:
// - Storage Blob Data Owner: leases (timer singleton), keys, the Flex deployment
//   package; the host creates its own containers (azure-webjobs-*).
// - Storage Queue Data Contributor: the blob trigger's internal queue (its name derives
//   from the host id, which the platform chooses on Flex Consumption).
// - Storage Table Data Contributor: the host's diagnostic events.
// - Not Storage Account Contributor, which Microsoft's table also lists for the blob
//   trigger: it serves the polling (storage-log scan) listener, which the extension does
//   not start for the Event Grid source this app uses; it is a control-plane role that
//   could turn shared keys back on.
//
// App's data account:
// - Storage Table Data Contributor on the account: the app creates its tables at run
//   time, and Create Table is authorised only at account scope (the table does not
//   exist yet). Nothing but the app's tables lives in this account.
// - Storage Blob Data Contributor on each container (uploads, reports), not on the
//   account: the app reads and writes blobs there; the Event Grid blob trigger only
//   reads the blob and its properties.
// - Storage Queue Data Contributor on calendar-changes: the webhook adds messages; the
//   queue trigger receives, deletes and updates them (Update Message, for retries and
//   visibility renewal, needs messages/write, which Reader + Message Processor lack).
// - Storage Queue Data Message Sender on each poison queue: the host only adds to them;
//   the queues exist (storage.bicep), so the host never needs to create them.
// - Key Vault Secrets User on each of the two secrets (not the whole vault).
// - Monitoring Metrics Publisher on Application Insights (local auth is off).
// https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity
// https://learn.microsoft.com/azure/azure-functions/functions-reference#grant-permission-to-the-identity
// https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory#permissions-for-calling-data-operations
// https://learn.microsoft.com/azure/key-vault/general/rbac-guide

@description('Object id of the Function App\'s system-assigned identity.')
param principalId string

@description('Name of the Functions host\'s storage account (AzureWebJobsStorage).')
param hostStorageAccountName string

@description('Name of the app\'s data storage account (DataStorage).')
param dataStorageAccountName string

@description('Blob containers of the data account the app reads and writes.')
param dataContainerNames array

@description('Queues of the data account the app sends to and the queue trigger reads.')
param readWriteQueueNames array

@description('Poison queues of the data account the host only adds messages to.')
param sendOnlyQueueNames array

@description('Name of the Key Vault.')
param keyVaultName string

@description('Names of the Key Vault secrets the app reads.')
param secretNames array

@description('Name of the Application Insights component.')
param applicationInsightsName string

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageQueueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageAccountName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageAccountName
}

resource dataBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: dataStorage
  name: 'default'
}

resource dataContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [for containerName in dataContainerNames: {
  parent: dataBlobService
  name: containerName
}]

resource dataQueueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: dataStorage
  name: 'default'
}

resource readWriteQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [for queueName in readWriteQueueNames: {
  parent: dataQueueService
  name: queueName
}]

resource sendOnlyQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [for queueName in sendOnlyQueueNames: {
  parent: dataQueueService
  name: queueName
}]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [for secretName in secretNames: {
  parent: vault
  name: secretName
}]

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource hostStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in [
  storageBlobDataOwner
  storageQueueDataContributor
  storageTableDataContributor
]: {
  name: guid(hostStorage.id, principalId, roleId)
  scope: hostStorage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

resource dataTableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dataStorage.id, principalId, storageTableDataContributor)
  scope: dataStorage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
  }
}

resource dataContainerRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (containerName, index) in dataContainerNames: {
  name: guid(dataContainers[index].id, principalId, storageBlobDataContributor)
  scope: dataContainers[index]
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}]

resource readWriteQueueRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (queueName, index) in readWriteQueueNames: {
  name: guid(readWriteQueues[index].id, principalId, storageQueueDataContributor)
  scope: readWriteQueues[index]
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}]

resource sendOnlyQueueRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (queueName, index) in sendOnlyQueueNames: {
  name: guid(sendOnlyQueues[index].id, principalId, storageQueueDataMessageSender)
  scope: sendOnlyQueues[index]
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataMessageSender)
  }
}]

resource secretRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (secretName, index) in secretNames: {
  name: guid(vault.id, secretName, principalId, keyVaultSecretsUser)
  scope: secrets[index]
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}]

resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
  }
}
