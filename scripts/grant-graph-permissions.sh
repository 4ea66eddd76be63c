#!/usr/bin/env bash
# Grant the function app's managed identity its Microsoft Graph application permissions (app role assignments):
#   LicenseAssignment.ReadWrite.All  assignLicense, subscribedSkus
#   User.Read.All                    read users and licenseDetails, users delta, the users change subscription
#   User.ReadWrite.All               only with --usage-location true (LICENSING_SET_USAGE_LOCATION=true): PATCH a
#                                    missing usageLocation. Write access to every user in the tenant, so off unless
#                                    asked for (infra: allowUsageLocationWrites, default false)
#   DeviceManagementManagedDevices.Read.All
#                                    only when LICENSING_DEVICE_LIMIT_CHECK=true (the sweep counts Intune devices)
# The same list as infra/app/graph-permissions.bicep (tests/infra checks that they agree).
#
# Who runs it: a Privileged Role Administrator (or Global Administrator) of the Entra tenant, after `az login`.
# An application permission on Microsoft Graph is tenant-wide admin consent; Azure roles such as Owner do not
# allow it, so whoever ran `azd up` usually cannot, and this script is how an admin grants it separately.
#
# Usage: scripts/grant-graph-permissions.sh [--principal-id ID] [--usage-location true|false]
#                                           [--device-limit true|false] [--prune] [--dry-run]
#   --principal-id    object id of the identity (default: API_IDENTITY_PRINCIPAL_ID from the current azd environment)
#   --usage-location  whether the app sets usage locations, and so needs User.ReadWrite.All (default:
#                     LICENSING_SET_USAGE_LOCATION from azd, else false)
#   --device-limit    whether the sweep checks Intune device counts (default: LICENSING_DEVICE_LIMIT_CHECK from azd,
#                     else false)
#   --prune           also remove any other Graph application permission the identity holds (e.g. User.ReadWrite.All
#                     after turning usage-location writing off)
#   --dry-run         say what would change; change nothing
# Idempotent: a permission already granted is left alone. Needs the Azure CLI (az); nothing else.
set -euo pipefail

GRAPH=https://graph.microsoft.com/v1.0
GRAPH_APP_ID=00000003-0000-0000-c000-000000000000 # Microsoft Graph, the same in every tenant
BASE_ROLES=(LicenseAssignment.ReadWrite.All User.Read.All)
USAGE_LOCATION_ROLES=(User.ReadWrite.All)
DEVICE_LIMIT_ROLES=(DeviceManagementManagedDevices.Read.All)

die() { echo "grant-graph-permissions: $*" >&2; exit 2; }
azd_value() { command -v azd >/dev/null 2>&1 && azd env get-value "$1" 2>/dev/null || true; }

principal_id="" usage_location="" device_limit="" prune=false dry_run=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --principal-id) principal_id="${2:-}"; shift 2 ;;
    --usage-location) usage_location="${2:-}"; shift 2 ;;
    --device-limit) device_limit="${2:-}"; shift 2 ;;
    --prune) prune=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not on PATH"
principal_id="${principal_id:-$(azd_value API_IDENTITY_PRINCIPAL_ID)}"
[[ -n "$principal_id" ]] || die "no --principal-id, and no API_IDENTITY_PRINCIPAL_ID in the azd environment (run azd provision first)"
usage_location="${usage_location:-$(azd_value LICENSING_SET_USAGE_LOCATION)}"
usage_location="$(echo "${usage_location:-false}" | tr '[:upper:]' '[:lower:]')"
case "$usage_location" in
  true) roles=("${BASE_ROLES[@]}" "${USAGE_LOCATION_ROLES[@]}") ;;
  false) roles=("${BASE_ROLES[@]}") ;;
  *) die "--usage-location must be true or false, not '$usage_location'" ;;
esac
device_limit="${device_limit:-$(azd_value LICENSING_DEVICE_LIMIT_CHECK)}"
device_limit="$(echo "${device_limit:-false}" | tr '[:upper:]' '[:lower:]')"
case "$device_limit" in
  true) roles+=("${DEVICE_LIMIT_ROLES[@]}") ;;
  false) ;;
  *) die "--device-limit must be true or false, not '$device_limit'" ;;
esac

# A managed identity created minutes ago may not have replicated to Graph yet: wait for it rather than fail.
identity_name=""
for attempt in 1 2 3 4 5 6; do
  identity_name="$(az rest --method GET --url "$GRAPH/servicePrincipals/$principal_id?\$select=id,displayName" \
    --query displayName --output tsv 2>/dev/null)" && break
  [[ $attempt -lt 6 ]] || die "no service principal with object id $principal_id in this tenant (az login to the right tenant?)"
  echo "waiting for $principal_id to appear in Entra ID (attempt $attempt)..." >&2
  sleep $((attempt * 10))
done
graph_sp_id="$(az rest --method GET --url "$GRAPH/servicePrincipals(appId='$GRAPH_APP_ID')?\$select=id" --query id --output tsv)"
echo "identity: $identity_name ($principal_id); Microsoft Graph service principal: $graph_sp_id"

role_id() { # app role name -> id, application permissions only
  az rest --method GET --url "$GRAPH/servicePrincipals(appId='$GRAPH_APP_ID')?\$select=appRoles" \
    --query "appRoles[?value=='$1' && contains(allowedMemberTypes, 'Application')].id | [0]" --output tsv
}
role_name() { # app role id -> name
  az rest --method GET --url "$GRAPH/servicePrincipals(appId='$GRAPH_APP_ID')?\$select=appRoles" \
    --query "appRoles[?id=='$1'].value | [0]" --output tsv
}

# "appRoleId<TAB>assignmentId" for every Graph permission the identity holds now.
held="$(az rest --method GET --url "$GRAPH/servicePrincipals/$principal_id/appRoleAssignments" \
  --query "value[?resourceId=='$graph_sp_id'].[appRoleId, id]" --output tsv)"

wanted_ids=()
for role in "${roles[@]}"; do
  id="$(role_id "$role")"
  [[ -n "$id" ]] || die "Microsoft Graph has no application permission named $role"
  wanted_ids+=("$id")
  if grep -q "^$id" <<<"$held"; then
    echo "  $role: already granted"
  elif $dry_run; then
    echo "  $role: would grant"
  else
    az rest --method POST --url "$GRAPH/servicePrincipals/$principal_id/appRoleAssignments" \
      --headers "Content-Type=application/json" \
      --body "{\"principalId\": \"$principal_id\", \"resourceId\": \"$graph_sp_id\", \"appRoleId\": \"$id\"}" \
      --output none
    echo "  $role: granted"
  fi
done

while IFS=$'\t' read -r held_role_id assignment_id; do
  [[ -n "$held_role_id" ]] || continue
  [[ " ${wanted_ids[*]} " == *" $held_role_id "* ]] && continue
  name="$(role_name "$held_role_id")"
  if ! $prune; then
    echo "  ${name:-$held_role_id}: held but not needed (--prune removes it)"
  elif $dry_run; then
    echo "  ${name:-$held_role_id}: would remove"
  else
    az rest --method DELETE --url "$GRAPH/servicePrincipals/$principal_id/appRoleAssignments/$assignment_id" --output none
    echo "  ${name:-$held_role_id}: removed"
  fi
done <<<"$held"

# A Graph token the app already holds keeps the roles it was issued with until it expires, and managed identity
# tokens are cached for up to 24 hours: a 403 from Graph shortly after a grant is that cache, not a missing grant.
echo "done. The app's cached Graph token may carry the old permissions for up to 24 hours."
