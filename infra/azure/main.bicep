// disttags on Azure Functions (Linux, custom handler): a Function App running disttags-azure, a
// storage account whose private blob container holds the packuments ({name}/index.json), and the
// app's managed identity with read-only access to that container (read and write with writes='on',
// for npm dist-tag add and rm). The app runs the zip it finds at the `packageUrl` output, fetched
// with its identity: upload the package there and restart the app (infra/README.md). Linux
// Consumption cannot take `func azure functionapp publish` when the host's storage is reached by
// identity (no shared keys), which is why the package is uploaded directly.

@description('Prefix of every resource name.')
param name string = 'disttags'

@description('Region of every resource.')
param location string = resourceGroup().location

@description('Blob container holding the packuments.')
param containerName string = 'packuments'

@description('Registry asked for packages the container lacks (its base URL), or "off".')
param upstreamRegistry string = 'off'

@description('Where log events go: stdout (collected by the platform), none, or an https:// URL.')
param logSink string = 'stdout'

@description('Microsoft Entra tenant whose users may read dist-tags (App Service Authentication).')
param authTenantId string = subscription().tenantId

@description('Client id of the Entra app registration npm tokens are issued for.')
param authClientId string

@description('Object id of the user or service principal that uploads the app package (az ad signed-in-user show --query id); empty grants nothing.')
param deployerPrincipalId string = ''

@description('on: every caller App Service Authentication admits may set and remove dist-tags (npm dist-tag add|rm), and the app may write the packuments. off: the app refuses writes (403) and may only read.')
@allowed([ 'off', 'on' ])
param writes string = 'off'

var storageName = toLower(take('${replace(name, '-', '')}${uniqueString(resourceGroup().id)}', 24))
// Built-in roles: Storage Blob Data Reader (read and list blobs, nothing more), Owner, Contributor.
var blobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// The app's role on the packuments: writing a tag rewrites {name}/index.json, which needs Contributor.
var packumentRole = writes == 'on' ? blobDataContributor : blobDataReader
// Where the app package is uploaded to and run from (WEBSITE_RUN_FROM_PACKAGE).
var packageContainerName = 'releases'
var packageName = 'disttags.zip'
// The host serves functions under host.json's route prefix; read from there so the two cannot drift.
var routePrefix = loadJsonContent('host.json').extensions.http.routePrefix
var pingPath = empty(routePrefix) ? '/-/ping' : '/${routePrefix}/-/ping'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59:A consumption-plan Function App cannot use private endpoints; shared keys are off and access is by Entra identity.
  // checkov:skip=CKV_AZURE_43:The name is computed (lower-case letters and digits, at most 24), which checkov cannot evaluate.
  name: storageName
  location: location
  kind: 'StorageV2'
  sku: {
    // checkov:skip=CKV_AZURE_206:Packuments are re-importable from their source; zone redundancy is the deployer's choice.
    name: 'Standard_ZRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // checkov:skip=CKV_AZURE_35:A consumption-plan Function App reaches storage over public endpoints; access is by Entra identity only (shared keys are off).
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

// The Functions host keeps its own state (leases, keys) in a separate account, so that the app's
// identity holds no more on the packuments' account than packumentAccess below grants.
resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59:A consumption-plan Function App cannot use private endpoints; shared keys are off and access is by Entra identity.
  // checkov:skip=CKV_AZURE_43:The name is computed (lower-case letters and digits, at most 24), which checkov cannot evaluate.
  name: take('${storageName}h', 24)
  location: location
  kind: 'StorageV2'
  sku: {
    // checkov:skip=CKV_AZURE_206:Host state (leases, keys) is rebuilt by the host; redundancy is the deployer's choice.
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // checkov:skip=CKV_AZURE_35:A consumption-plan Function App reaches its host storage over public endpoints; access is by Entra identity only.
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource hostBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: hostStorage
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

// The app package (host.json, disttags/function.json, disttags-azure), run from here by URL.
resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: hostBlobService
  name: packageContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${name}-logs'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${name}-insights'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
  }
}

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  // checkov:skip=CKV_AZURE_225:The consumption plan (Y1) has no zone-redundant tier; the platform replaces instances itself.
  name: '${name}-plan'
  location: location
  kind: 'functionapp'
  sku: {
    name: 'Y1'
    tier: 'Dynamic'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2023-12-01' = {
  // checkov:skip=CKV_AZURE_222:This is a registry endpoint npm reaches over the internet; App Service Authentication guards it.
  // checkov:skip=CKV_AZURE_212:The consumption plan scales instances on demand; a fixed minimum needs a premium plan.
  name: '${name}-${uniqueString(resourceGroup().id)}'
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      // checkov:skip=CKV_AZURE_17:npm authenticates with bearer tokens (App Service Authentication below), not client certificates.
      linuxFxVersion: ''
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      healthCheckPath: pingPath
      // DISTTAGS_REQUEST_TIMEOUT_MS: one request's budget (store lookup, upstream call, retries), well under
      // host.json's functionTimeout and the 230 s the Azure front end allows, so a hung store or upstream gets
      // disttags' own 500 or 504 and an error event before the request is cut off. A store or upstream
      // timeout set here must not exceed it. (checkov's Bicep parser refuses comments in the list.)
      appSettings: [
        { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
        { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'custom' }
        { name: 'AzureWebJobsStorage__accountName', value: hostStorage.name }
        { name: 'WEBSITE_RUN_FROM_PACKAGE', value: '${hostStorage.properties.primaryEndpoints.blob}${packageContainerName}/${packageName}' }
        { name: 'WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID', value: 'SystemAssigned' }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'DISTTAGS_STORE', value: 'az://${containerName}' }
        { name: 'AZURE_STORAGE_ACCOUNT_NAME', value: storage.name }
        { name: 'DISTTAGS_UPSTREAM', value: upstreamRegistry }
        { name: 'DISTTAGS_LOG', value: logSink }
        { name: 'DISTTAGS_WRITES', value: writes }
        { name: 'DISTTAGS_REQUEST_TIMEOUT_MS', value: '10000' }
      ]
    }
  }
}

// App Service Authentication guards every route: only tokens of the configured Entra app get through,
// and the caller reaches the handler as X-MS-CLIENT-PRINCIPAL(-NAME).
resource auth 'Microsoft.Web/sites/config@2023-12-01' = {
  // checkov evaluates every sites/config resource as the site's web configuration; this one is
  // authsettingsV2, which has none of those settings:
  // checkov:skip=CKV_AZURE_13:This resource is the App Service Authentication the check asks for.
  // checkov:skip=CKV_AZURE_63:HTTP logging belongs to the web config, not authsettingsV2; logs go to Application Insights.
  // checkov:skip=CKV_AZURE_65:Detailed error pages belong to the web config, not authsettingsV2.
  // checkov:skip=CKV_AZURE_66:Failed request tracing belongs to the web config, not authsettingsV2.
  // checkov:skip=CKV_AZURE_80:No .NET runtime: the handler is a native binary.
  // checkov:skip=CKV_AZURE_88:Azure Files mounts belong to the web config; the handler keeps no files.
  // checkov:skip=CKV_AZURE_222:A registry endpoint npm reaches over the internet; this resource is what guards it.
  parent: app
  name: 'authsettingsV2'
  properties: {
    platform: { enabled: true }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [ pingPath ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
        }
        validation: {
          // v2 access tokens carry the client id as audience, v1 tokens the application id URI.
          allowedAudiences: [ authClientId, 'api://${authClientId}' ]
        }
      }
    }
  }
}

// Reader, or Contributor with writes='on'. An assignment's role cannot change, so each role has its
// own assignment name; a deployment in the default (incremental) mode removes none, so turning writes
// off again leaves the Contributor assignment until you delete it (infra/README.md).
resource packumentAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, app.id, packumentRole)
  scope: container
  properties: {
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', packumentRole)
  }
}

// The Functions host's own account (its state, and the package it runs): Storage Blob Data Owner
// there, and nothing on the packuments' account.
resource hostStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, app.id, blobDataOwner)
  scope: hostStorage
  properties: {
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataOwner)
  }
}

// Whoever deploys may write the package container, and nothing else.
resource deployerPackageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(packageContainer.id, deployerPrincipalId, blobDataContributor)
  scope: packageContainer
  properties: {
    principalId: deployerPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
  }
}

output appName string = app.name
output registryUrl string = empty(routePrefix) ? 'https://${app.properties.defaultHostName}/' : 'https://${app.properties.defaultHostName}/${routePrefix}/'
output storageAccount string = storage.name
output hostStorageAccount string = hostStorage.name
output packageUrl string = '${hostStorage.properties.primaryEndpoints.blob}${packageContainerName}/${packageName}'
