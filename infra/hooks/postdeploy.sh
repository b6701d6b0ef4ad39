#!/bin/sh
# azd `postdeploy` hook (azure.yaml): subscribes the blob trigger `import_calendar_csv`
# to "blob created" events of the upload container.
#
# Why after deploy: Flex Consumption runs blob triggers only with the Event Grid source,
# and Event Grid must call the host's blob webhook with the `blobs_extension` system key.
# That key exists only once the deployed code's blob trigger has been loaded, so the
# subscription (blob-events.bicep, beside this script) cannot be part of `azd provision`.
# The key is read inside the Bicep deployment (listKeys); this script only checks that it
# exists and never prints or stores it.
# https://learn.microsoft.com/azure/azure-functions/functions-event-grid-blob-trigger
#
# Needs the Azure CLI, signed in (`az login`) to the tenant azd deploys to. Idempotent:
# re-running it updates the same subscription.
set -eu

: "${AZURE_SUBSCRIPTION_ID:?run this through azd (azd up or azd deploy)}"
: "${AZURE_RESOURCE_GROUP:?missing: run azd provision first}"
: "${AZURE_FUNCTION_APP_NAME:?missing: run azd provision first}"
: "${AZURE_EVENTGRID_SYSTEM_TOPIC_NAME:?missing: run azd provision first}"
: "${UPLOADS_CONTAINER:?missing: run azd provision first}"

here=$(dirname "$0")
wait_seconds=${BLOBS_EXTENSION_KEY_WAIT_SECONDS:-600}
deadline=$(( $(date +%s) + wait_seconds ))

echo "Waiting for the blob extension's system key on $AZURE_FUNCTION_APP_NAME ..."
while :; do
    # Listing the keys also starts the host if it scaled to zero, which creates the key.
    present=$(az functionapp keys list \
        --subscription "$AZURE_SUBSCRIPTION_ID" \
        --resource-group "$AZURE_RESOURCE_GROUP" \
        --name "$AZURE_FUNCTION_APP_NAME" \
        --query "systemKeys.blobs_extension != null" \
        --output tsv 2>/dev/null || echo false)
    if [ "$present" = "true" ]; then
        break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "The blobs_extension key did not appear within ${wait_seconds}s." >&2
        echo "Check that the deployed app has the blob trigger import_calendar_csv (source EventGrid)," >&2
        echo "then run: sh infra/hooks/postdeploy.sh (with the azd environment loaded: azd env get-values)." >&2
        exit 1
    fi
    sleep 10
done

echo "Subscribing import_calendar_csv to blob-created events in container $UPLOADS_CONTAINER ..."
az deployment group create \
    --subscription "$AZURE_SUBSCRIPTION_ID" \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --name blob-events \
    --template-file "$here/blob-events.bicep" \
    --parameters \
        functionAppName="$AZURE_FUNCTION_APP_NAME" \
        systemTopicName="$AZURE_EVENTGRID_SYSTEM_TOPIC_NAME" \
        uploadsContainerName="$UPLOADS_CONTAINER" \
    --output none
echo "Event Grid subscription in place."
