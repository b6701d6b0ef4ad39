// Links the Function App to the Static Web App as its backend (requests to the
// Static Web App's /api/* are proxied to the Function App, with the signed-in user's
// x-ms-client-principal), then pins the Function App's App Service Authentication so
// that only the Static Web App reaches its HTTP functions. The one exception is the
// blob extension's Event Grid webhook, which Event Grid calls directly and which the
// host protects with its `blobs_extension` system key.
// https://learn.microsoft.com/azure/static-web-apps/functions-bring-your-own
// https://learn.microsoft.com/azure/app-service/configure-authentication-file-based

@description('Name of the Static Web App.')
param staticWebAppName string

@description('Name of the Function App.')
param functionAppName string

@description('Region of the Function App.')
param functionAppLocation string

resource staticWebApp 'Microsoft.Web/staticSites@2024-04-01' existing = {
  name: staticWebAppName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource link 'Microsoft.Web/staticSites/linkedBackends@2024-04-01' = {
  parent: staticWebApp
  name: 'api'
  properties: {
    backendResourceId: functionApp.id
    region: functionAppLocation
  }
}

// Linking writes this configuration too; declaring it keeps it reviewable here and
// adds the webhook exclusion, which linking does not.
resource authentication 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Checkov reads every sites/config resource as the site itself; this one is the authentication setting (the site's public access is justified in functionapp.bicep).
  // checkov:skip=CKV_AZURE_13: False positive: the check looks for the retired authsettings (v1) `enabled` flag; this is authsettingsV2 with platform.enabled = true and requireAuthentication = true.
  parent: functionApp
  name: 'authsettingsV2'
  dependsOn: [
    link
  ]
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/runtime/webhooks/blobs'
      ]
    }
    httpSettings: {
      requireHttps: true
      routes: {
        apiPrefix: '/.auth'
      }
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    identityProviders: {
      azureStaticWebApps: {
        enabled: true
        registration: {
          clientId: staticWebApp.properties.defaultHostname
        }
      }
    }
  }
}
