// Key Vault holding the product's two secrets: the Entra app registration's client
// secret and the key that signs admin-consent state. RBAC mode only (no access
// policies); soft delete and purge protection keep a deleted secret recoverable.
// The Function App reads the secrets through Key Vault references in its app settings
// (functionapp.bicep), with the versionless URI so a new secret version is picked up
// without a redeploy.
// https://learn.microsoft.com/azure/app-service/app-service-key-vault-references

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Key Vault name (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Client secret of the product\'s Entra app registration.')
@secure()
param entraClientSecret string

@description('Key that signs admin-consent state (at least 32 characters).')
@secure()
@minLength(32)
param stateSigningKey string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Key Vault references from a Function App without VNet integration are resolved over the public endpoint, which a deny-by-default firewall would block; access is RBAC-only, scoped to the two secrets.
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: public network access is needed without a VNet. docs/deploy.md describes the private-endpoint hardening.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource clientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: An expiry date would make the app fail at an arbitrary date: the client secret's real expiry is the end date set in Entra ID and the rotation procedure in docs/deploy.md replaces it; the signing key does not expire (rotating it only voids consent links in flight).
  parent: vault
  name: 'entra-client-secret'
  properties: {
    value: entraClientSecret
    contentType: 'text/plain; Entra app registration client secret'
  }
}

resource signingKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: An expiry date would make the app fail at an arbitrary date: the client secret's real expiry is the end date set in Entra ID and the rotation procedure in docs/deploy.md replaces it; the signing key does not expire (rotating it only voids consent links in flight).
  parent: vault
  name: 'state-signing-key'
  properties: {
    value: stateSigningKey
    contentType: 'text/plain; HMAC key for admin-consent state'
  }
}

output name string = vault.name
output secretNames array = [
  clientSecret.name
  signingKey.name
]
// Versionless secret URIs: a Key Vault reference built from them follows the latest version.
output entraClientSecretUri string = clientSecret.properties.secretUri
output stateSigningKeySecretUri string = signingKey.properties.secretUri
