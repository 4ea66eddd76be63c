// The M365 licensing Functions app on Flex Consumption (FC1): one user-assigned managed identity for everything,
// storage with shared keys disabled, Key Vault (RBAC) for the webhook and Graph secrets, Application Insights with local auth
// off, and - opt-in, see grantGraphPermissions - the identity's Microsoft Graph application permissions.
// Layout follows the Azure-Samples Flex Consumption quickstarts (azd + Azure Verified Modules). See infra/README.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds the short unique token in every resource name.')
param environmentName string

@minLength(1)
@description('Region for every resource. It must offer Flex Consumption: az functionapp list-flexconsumption-locations')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of whoever runs azd (azd sets AZURE_PRINCIPAL_ID). Gets Key Vault Secrets Officer on the vault so they can set the webhook secrets; empty = no role.')
param principalId string = ''

@description('Whether principalId is a person or a pipeline identity.')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@description('Object id of the Entra group (or user) whose members run the licensing CLI against this deployment (azd env LICENSING_ADMIN_PRINCIPAL_ID). Gets only the storage data roles the admin commands need: Storage Table Data Contributor on the account, Storage Queue Data Message Sender on license-requests, Storage Blob Data Contributor on sweep-reports. Empty = none.')
param adminPrincipalId string = ''

@description('Whether adminPrincipalId is a group (recommended: membership is the access list) or one user.')
@allowed(['User', 'Group'])
param adminPrincipalType string = 'Group'

@description('Grant the identity its Microsoft Graph application permissions in this deployment. Needs azd to run as a Privileged Role Administrator (or Global Administrator); otherwise leave false and have one run scripts/grant-graph-permissions.sh.')
param grantGraphPermissions bool = false

@description('Whether the app may write users: LICENSING_SET_USAGE_LOCATION, and with it the Graph permission User.ReadWrite.All (tenant-wide write access to every user), which only PATCHing a missing usageLocation needs. Off by default: a user without a usage location is then recorded as needing one, and the identity can only read users. Turn on only if HR data cannot set usageLocation upstream.')
param allowUsageLocationWrites bool = false

@description('LICENSING_DEVICE_LIMIT_CHECK. true makes the sweep\'s full reads count Intune managed devices per user (report-only device-limit drift: over 15 per Intune license), which needs DeviceManagementManagedDevices.Read.All.')
param deviceLimitCheck bool = false

@description('SWEEP_SCHEDULE: six-field NCRONTAB, UTC.')
param sweepSchedule string = '0 0 2 * * *'

@description('SWEEP_MODE: report records drift; remediate also queues fixes.')
@allowed(['report', 'remediate'])
param sweepMode string = 'report'

@description('HR_TIMEZONE: IANA zone the HR system\'s dates are in.')
param hrTimezone string = 'UTC'

@description('HR_HIRE_LEAD_HOURS: license a hire this many hours before startDate.')
@minValue(0)
param hrHireLeadHours int = 0

@description('HR_LEAVER_GRACE_DAYS: a leaver keeps licenses this many days after endDate.')
@minValue(0)
param hrLeaverGraceDays int = 0

@description('Most instances Flex Consumption may scale out to. Each works on up to batchSize + newBatchThreshold queue messages at once (host.json); the Graph write pace itself is set by the shared LICENSING_WRITE_BUDGET.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-${resourceToken}'
// Flex Consumption deploys the app package from this blob container (named as in the Azure-Samples quickstarts).
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

// The app's only identity: host storage, the app's queues/tables/blobs, Key Vault references, App Insights, Graph.
module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  name: 'logAnalytics'
  scope: rg
  params: {
    name: 'log-${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30
  }
}

module appInsights 'br/public:avm/res/insights/component:0.6.0' = {
  name: 'appInsights'
  scope: rg
  params: {
    name: 'appi-${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true // telemetry is accepted only with the identity's Entra token (Monitoring Metrics Publisher)
  }
}

// Queues, tables and containers are created here and, idempotently, by the app on first use (Storage.ensure_created):
// the deployment makes them visible and alertable (poison queues) before the first message; the app keeps working
// against Azurite and survives a table deleted by hand. tests/infra keeps these lists equal to licensing/adapters/storage/account.py.
module storage 'br/public:avm/res/storage/storage-account:0.17.2' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    kind: 'StorageV2'
    skuName: 'Standard_LRS'
    allowSharedKeyAccess: false // identity-based connections only: no account keys, no SAS signed with them
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled' // Flex Consumption without VNet integration reaches storage over its public endpoint
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [
        { name: deploymentContainerName }
        { name: 'sweep-reports' }
      ]
    }
    queueServices: {
      queues: [
        { name: 'license-requests' }
        { name: 'license-verify' }
        { name: 'license-requests-poison' }
        { name: 'license-verify-poison' }
      ]
    }
    tableServices: {
      tables: [
        { name: 'LicenseStatus' }
        { name: 'LicenseEvents' }
        { name: 'HrEvents' }
        { name: 'ScheduledRequests' }
        { name: 'SweepRuns' }
        { name: 'SweepDrift' }
        { name: 'UserLeases' }
        { name: 'WriteBudget' }
        { name: 'StatusIndex' }
      ]
    }
  }
}

// Holds the five secrets the app settings reference: hr-webhook-secret, hr-webhook-secret-previous,
// graph-notification-client-state, graph-notification-url and graph-lifecycle-url. The deployment writes no secret
// value (it would overwrite the real one on every azd provision); an admin sets them once (infra/README.md).
module keyVault 'br/public:avm/res/key-vault/vault:0.13.3' = {
  name: 'keyVault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    sku: 'standard'
    enableRbacAuthorization: true
    enablePurgeProtection: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled' // read by the platform for Key Vault references; access is by RBAC only
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    diagnosticSettings: [
      { workspaceResourceId: logAnalytics.outputs.resourceId } // audit every secret read and write
    ]
  }
}

module plan 'br/public:avm/res/web/serverfarm:0.5.0' = {
  name: 'plan'
  scope: rg
  params: {
    name: 'plan-${resourceToken}'
    location: location
    tags: tags
    skuName: 'FC1' // Flex Consumption
    reserved: true // Linux
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: appInsights.outputs.name
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
    adminPrincipalId: adminPrincipalId
    adminPrincipalType: adminPrincipalType
  }
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    appServicePlanId: plan.outputs.resourceId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: appInsights.outputs.name
    keyVaultName: keyVault.outputs.name
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    maximumInstanceCount: maximumInstanceCount
    allowUsageLocationWrites: allowUsageLocationWrites
    deviceLimitCheck: deviceLimitCheck
    sweepSchedule: sweepSchedule
    sweepMode: sweepMode
    hrTimezone: hrTimezone
    hrHireLeadHours: hrHireLeadHours
    hrLeaverGraceDays: hrLeaverGraceDays
  }
  // The host starts as soon as the site exists; with its roles in place first, storage and Key Vault references
  // resolve on the first start instead of after the next restart.
  dependsOn: [rbac]
}

module graphPermissions './app/graph-permissions.bicep' = if (grantGraphPermissions) {
  name: 'graphPermissions'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    allowUsageLocationWrites: allowUsageLocationWrites
    deviceLimitCheck: deviceLimitCheck
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.SERVICE_API_NAME
output SERVICE_API_NAME string = api.outputs.SERVICE_API_NAME
output SERVICE_API_URI string = 'https://${api.outputs.SERVICE_API_HOSTNAME}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
// Not named AZURE_CLIENT_ID: azd exports outputs to hooks, where that name would steer azure-identity credentials.
output API_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output API_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
