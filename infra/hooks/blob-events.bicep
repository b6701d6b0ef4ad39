// The Event Grid subscription that delivers "blob created" events in the upload
// container to the Function App's blob extension webhook, which runs the blob trigger
// `import_calendar_csv`. Deployed by postdeploy.sh (beside this file) after `azd deploy`, at
// resource-group scope, because the webhook's `blobs_extension` system key exists
// only once the deployed code's blob trigger has been loaded. The key is read here with
// listKeys and never passes through a parameter, a command line or an azd environment.
// https://learn.microsoft.com/azure/azure-functions/functions-event-grid-blob-trigger#create-the-event-subscription

@description('Name of the Function App.')
param functionAppName string

@description('Name of the Storage account\'s Event Grid system topic.')
param systemTopicName string

@description('Blob container the CSV import watches (UPLOADS_CONTAINER).')
param uploadsContainerName string

@description('Name of the blob-triggered function.')
param functionName string = 'import_calendar_csv'

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

var blobsExtensionKey = listKeys('${functionApp.id}/host/default', '2024-04-01').systemKeys.blobs_extension

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: replace(functionName, '_', '-')
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        // Python functions are named Host.Functions.<name> in the webhook URL.
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}'
        maxEventsPerBatch: 1
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${uploadsContainerName}/'
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}
