// The Event Grid system topic of the Storage account. Flex Consumption runs blob
// triggers only with the Event Grid source, so blob-created events reach the host
// through this topic. The subscription to the host's blob webhook is created after the
// code is deployed (hooks/blob-events.bicep, run by hooks/postdeploy.sh): its URL carries the
// `blobs_extension` system key, which exists only once the blob trigger is loaded.
// https://learn.microsoft.com/azure/azure-functions/functions-event-grid-blob-trigger

@description('Azure region (the Storage account\'s).')
param location string

@description('Tags for every resource.')
param tags object

@description('Name of the system topic.')
param name string

@description('Resource id of the Storage account whose events the topic publishes.')
param storageAccountId string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: storageAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output name string = topic.name
