// The function app: Flex Consumption, Python 3.11, the user-assigned identity, and every app setting the code reads
// (licensing/settings.py SETTING_NAMES; tests/infra keeps the `appSettings` object below in step with it).
// azd provision replaces the whole app-settings set: change settings here or through azd env, never in the portal.
param name string
param location string = resourceGroup().location
param tags object = {}
param serviceName string = 'api'
param appServicePlanId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param keyVaultName string
param identityId string
param identityClientId string
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 40

@description('LICENSING_SET_USAGE_LOCATION (main.bicep allowUsageLocationWrites, which also decides User.ReadWrite.All).')
param allowUsageLocationWrites bool = false
param deviceLimitCheck bool = false
param sweepSchedule string = '0 0 2 * * *'
@allowed(['report', 'remediate'])
param sweepMode string = 'report'
param hrTimezone string = 'UTC'
param hrHireLeadHours int = 0
param hrLeaverGraceDays int = 0

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// Versionless secret URIs (with the trailing slash, which versionless references need to follow new versions): the
// platform picks up a new secret version within 24 hours, or at once when the app restarts. The two Graph URLs carry
// a function key (?code=), so they are secrets too: they never pass through deployment parameters or history.
var secretUri = '${vault.properties.vaultUri}secrets'

var appSettings = {
  // Platform: host storage over the identity (the account has shared keys disabled), and telemetry over Entra auth
  // (the host and the app's own exporter, licensing/adapters/telemetry.py, both read the two APPLICATIONINSIGHTS_* settings).
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: stg.properties.primaryEndpoints.table
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The app (defaults as in licensing/settings.py and local.settings.sample.json).
  LICENSING_POLICY_PATH: 'licensing-policy.json'
  LICENSING_GRAPH_URL: 'https://graph.microsoft.com/v1.0'
  LICENSING_GRAPH_AUTH: 'managed-identity'
  AZURE_CLIENT_ID: identityClientId
  LICENSING_TENANT_ID: tenant().tenantId // Graph notifications naming another tenant are dropped
  LICENSING_GRAPH_TIMEOUT_SECONDS: '30'
  LICENSING_GRAPH_RETRY_DELAY_SECONDS: '3'
  LICENSING_SET_USAGE_LOCATION: allowUsageLocationWrites ? 'true' : 'false' // string(bool) would give 'True'
  LICENSING_CATALOG_TTL_SECONDS: '60'
  LICENSING_VERIFY_DELAY_SECONDS: '60'
  LICENSING_VERIFY_MAX_BACKOFF_SECONDS: '3600'
  LICENSING_VERIFY_DEADLINE_MINUTES: '1440'
  LICENSING_BLOCKED_RETRY_SECONDS: '900'
  LICENSING_BLOCKED_MAX_ATTEMPTS: '8'
  LICENSING_NOT_FOUND_RETRY_SECONDS: '120'
  LICENSING_NOT_FOUND_MAX_ATTEMPTS: '3'
  LICENSING_WRITE_BUDGET: '3000'
  LICENSING_WRITE_WINDOW_SECONDS: '150'
  LICENSING_LOW_SEAT_THRESHOLD: '5'
  LICENSING_DEVICE_LIMIT_CHECK: deviceLimitCheck ? 'true' : 'false'
  HR_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${secretUri}/hr-webhook-secret/)'
  HR_WEBHOOK_SECRET_PREVIOUS: '@Microsoft.KeyVault(SecretUri=${secretUri}/hr-webhook-secret-previous/)'
  HR_HIRE_LEAD_HOURS: string(hrHireLeadHours)
  HR_LEAVER_GRACE_DAYS: string(hrLeaverGraceDays)
  HR_TIMEZONE: empty(hrTimezone) ? 'UTC' : hrTimezone
  GRAPH_NOTIFICATION_URL: '@Microsoft.KeyVault(SecretUri=${secretUri}/graph-notification-url/)'
  GRAPH_LIFECYCLE_URL: '@Microsoft.KeyVault(SecretUri=${secretUri}/graph-lifecycle-url/)'
  GRAPH_NOTIFICATION_CLIENT_STATE: '@Microsoft.KeyVault(SecretUri=${secretUri}/graph-notification-client-state/)'
  // The sweep timer binds %SWEEP_SCHEDULE%: an empty value would stop the function from indexing at all.
  SWEEP_SCHEDULE: empty(sweepSchedule) ? '0 0 2 * * *' : sweepSchedule
  SWEEP_MODE: sweepMode
  SWEEP_FULL_EVERY_DAYS: '7'
  SWEEP_FIX_RATE_PER_MINUTE: '300'
}

module api 'br/public:avm/res/web/site:0.15.1' = {
  name: '${serviceName}-flex-consumption'
  params: {
    kind: 'functionapp,linux'
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': serviceName })
    serverFarmResourceId: appServicePlanId
    httpsOnly: true
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [identityId]
    }
    keyVaultAccessIdentityResourceId: identityId // resolve @Microsoft.KeyVault(...) settings with this identity
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      alwaysOn: false // not available on Flex Consumption
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    // No basic (user name + password) auth on the SCM (Kudu) and FTP endpoints: a publishing password would deploy
    // code that runs as the identity, Graph permissions included. azd deploys to the blob container with Entra auth.
    basicPublishingCredentialsPolicies: [
      {
        name: 'ftp'
        allow: false
      }
      {
        name: 'scm'
        allow: false
      }
    ]
    appSettingsKeyValuePairs: appSettings
  }
}

output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_HOSTNAME string = api.outputs.defaultHostname
