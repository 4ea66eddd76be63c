// Microsoft Graph application permissions (app role assignments) for the app's managed identity, through the
// Microsoft Graph Bicep extension (alias in ../bicepconfig.json). Granting Graph app roles is an admin consent: the
// account running the deployment needs Privileged Role Administrator (or Global Administrator) in Entra ID, which
// is why main.bicep deploys this module only when grantGraphPermissions is true. scripts/grant-graph-permissions.sh
// grants the same roles with az rest for admins who run it separately. tests/infra checks both lists.
extension microsoftGraphV1

@description('Principal (object) id of the managed identity\'s service principal.')
param principalId string

@description('LICENSING_SET_USAGE_LOCATION: only then does the app PATCH users, which needs User.ReadWrite.All.')
param allowUsageLocationWrites bool

@description('LICENSING_DEVICE_LIMIT_CHECK: only then does the sweep read Intune managed devices, which needs DeviceManagementManagedDevices.Read.All.')
param deviceLimitCheck bool

var graphAppId = '00000003-0000-0000-c000-000000000000' // Microsoft Graph, the same in every tenant

// LicenseAssignment.ReadWrite.All: assignLicense and subscribedSkus. User.Read.All: read users, licenseDetails,
// users delta and the users change-notification subscription. User.ReadWrite.All: set a missing usageLocation.
// DeviceManagementManagedDevices.Read.All: count managed devices per user (the sweep's device-limit check).
var graphAppRoles = concat(['LicenseAssignment.ReadWrite.All', 'User.Read.All'], allowUsageLocationWrites ? ['User.ReadWrite.All'] : [], deviceLimitCheck ? ['DeviceManagementManagedDevices.Read.All'] : [])

resource graph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: graphAppId
}

resource grants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for role in graphAppRoles: {
    principalId: principalId
    resourceId: graph.id
    appRoleId: filter(graph.appRoles, r => r.value == role && contains(r.allowedMemberTypes, 'Application'))[0].id
  }
]

output grantedAppRoles array = graphAppRoles
