// Links the Function App to the Static Web App as its backend (requests to the
// Static Web App's /api/* are proxied to the Function App, with the signed-in user's
// x-ms-client-principal), then pins the Function App's App Service Authentication:
// every request must be authenticated (else 401) by one of two providers:
// - the Static Web App (the linked backend's provider): administrators, Microsoft's
//   redirects and Graph's webhooks, all through the Static Web App's route rules;
// - Microsoft Entra ID, for the workplace system's service principals calling the
//   bookings API on the Function App's own host name: access tokens issued by the
//   product's home tenant for the product's app registration (api://<client id>), and
//   only when obtained by one of the listed client applications. With no client listed
//   the provider is off: an empty allowedApplications list would admit any application.
// The app itself checks the roles (bookings.read / bookings.write) in the principal.
// The one path excluded from authentication is the blob extension's Event Grid webhook,
// which Event Grid calls directly and which the host protects with its `blobs_extension`
// system key.
// https://learn.microsoft.com/azure/static-web-apps/functions-bring-your-own
// https://learn.microsoft.com/azure/app-service/configure-authentication-provider-aad#use-a-built-in-authorization-policy
// https://learn.microsoft.com/azure/app-service/configure-authentication-file-based

@description('Name of the Static Web App.')
param staticWebAppName string

@description('Name of the Function App.')
param functionAppName string

@description('Region of the Function App.')
param functionAppLocation string

@description('Application (client) id of the product\'s app registration: the audience of the bookings API\'s tokens (api://<client id>).')
param entraClientId string

@description('Directory (tenant) id of the product\'s home tenant: the only issuer of tokens the Function App accepts.')
param entraTenantId string

@description('Client ids of the applications (the workplace system) allowed to call the bookings API with their own tokens; empty: none.')
param bookingsClientAppIds array

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
      azureActiveDirectory: {
        enabled: !empty(bookingsClientAppIds)
        registration: {
          clientId: entraClientId
          // Tenant-specific, never common/organizations: the app registration is
          // multitenant, and only the home tenant grants the bookings roles.
          openIdIssuer: '${environment().authentication.loginEndpoint}${entraTenantId}/v2.0'
        }
        validation: {
          // The client id itself is always an allowed audience (v2.0 tokens carry it);
          // the identifier URI is the audience of v1.0 tokens.
          allowedAudiences: [
            'api://${entraClientId}'
          ]
          defaultAuthorizationPolicy: {
            // Checked against the token's appid / azp claim.
            allowedApplications: bookingsClientAppIds
          }
        }
      }
    }
  }
}
