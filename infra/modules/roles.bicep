// What the Function App's managed identity may do, and nothing broader:
// - Storage Blob Data Owner: the blob trigger and the host need it (blob receipts,
//   leases, the deployment package); Contributor is not enough for the trigger.
// - Storage Queue Data Contributor: the blob trigger's poison queue.
// - Storage Table Data Contributor: the app's state lives in tables.
// - Key Vault Secrets User on each of the two secrets (not the whole vault).
// - Monitoring Metrics Publisher on Application Insights (local auth is off).
// https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#identity-based-connections
// https://learn.microsoft.com/azure/key-vault/general/rbac-guide

@description('Object id of the Function App\'s system-assigned identity.')
param principalId string

@description('Name of the Storage account.')
param storageAccountName string

@description('Name of the Key Vault.')
param keyVaultName string

@description('Names of the Key Vault secrets the app reads.')
param secretNames array

@description('Name of the Application Insights component.')
param applicationInsightsName string

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

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

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in [
  storageBlobDataOwner
  storageQueueDataContributor
  storageTableDataContributor
]: {
  name: guid(storage.id, principalId, roleId)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
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
