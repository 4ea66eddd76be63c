#!/usr/bin/env bash
# Grant the admins who run the licensing CLI against the deployment (`licensing status`, `events`, `requeue`, `sweep`
# with AzureWebJobsStorage__accountName and their own az login) the storage data roles those commands need, and
# nothing more. The same roles and scopes as infra/app/rbac.bicep's adminPrincipalId (tests/infra checks they agree):
#   Storage Table Data Contributor     on the account:                  status, events, requeue read the tables;
#                                                                       sweep also writes SweepRuns, SweepDrift...
#   Storage Queue Data Message Sender  on the license-requests queue:   requeue, sweep --remediate enqueue requests
#   Storage Blob Data Contributor      on the sweep-reports container:  sweep saves its CSV report
# With --read-only instead: Storage Table Data Reader on the account (status and events only).
# Azure cannot scope a role to one CLI command: whoever may sweep may also write the tables. See docs/operations.md#roles.
# Graph is not granted here: the CLI calls Graph as the signed-in admin, who needs an Entra role (License Administrator).
#
# Who runs it: someone who may assign roles on the storage account (Owner, User Access Administrator or Role Based
# Access Control Administrator), after `az login`.
#
# Usage: scripts/grant-admin-roles.sh [--principal-id ID] [--principal-type Group|User] [--account NAME]
#                                     [--resource-group RG] [--read-only] [--dry-run]
#   --principal-id    object id of the admins' Entra group (or one user) (default: LICENSING_ADMIN_PRINCIPAL_ID from azd)
#   --principal-type  Group or User (default: LICENSING_ADMIN_PRINCIPAL_TYPE from azd, else Group)
#   --account         storage account name (default: AZURE_STORAGE_ACCOUNT_NAME from azd)
#   --resource-group  its resource group (default: AZURE_RESOURCE_GROUP from azd)
#   --read-only       only Storage Table Data Reader (status, events)
#   --dry-run         say what would be granted; change nothing
# Idempotent: a role already assigned at that scope is left alone. Needs the Azure CLI (az); nothing else.
set -euo pipefail

REQUESTS_QUEUE=license-requests
REPORT_CONTAINER=sweep-reports
# Built-in role definition ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage).
ROLE_IDS=(
  "Storage Table Data Contributor=0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
  "Storage Table Data Reader=76199698-9eea-4c19-bc75-cec21354c6b6"
  "Storage Queue Data Message Sender=c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
  "Storage Blob Data Contributor=ba92f5b4-2d11-453d-a403-e96b0029c9fe"
)

die() { echo "grant-admin-roles: $*" >&2; exit 2; }
azd_value() { command -v azd >/dev/null 2>&1 && azd env get-value "$1" 2>/dev/null || true; }
role_id() {
  local entry
  for entry in "${ROLE_IDS[@]}"; do [[ "${entry%%=*}" == "$1" ]] && { echo "${entry#*=}"; return; }; done
  die "no id for role '$1'"
}

principal_id="" principal_type="" account="" resource_group="" read_only=false dry_run=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --principal-id) principal_id="${2:-}"; shift 2 ;;
    --principal-type) principal_type="${2:-}"; shift 2 ;;
    --account) account="${2:-}"; shift 2 ;;
    --resource-group) resource_group="${2:-}"; shift 2 ;;
    --read-only) read_only=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not on PATH"
principal_id="${principal_id:-$(azd_value LICENSING_ADMIN_PRINCIPAL_ID)}"
[[ -n "$principal_id" ]] || die "no --principal-id, and no LICENSING_ADMIN_PRINCIPAL_ID in the azd environment"
principal_type="${principal_type:-$(azd_value LICENSING_ADMIN_PRINCIPAL_TYPE)}"
principal_type="${principal_type:-Group}"
[[ "$principal_type" == Group || "$principal_type" == User ]] || die "--principal-type must be Group or User, not '$principal_type'"
account="${account:-$(azd_value AZURE_STORAGE_ACCOUNT_NAME)}"
[[ -n "$account" ]] || die "no --account, and no AZURE_STORAGE_ACCOUNT_NAME in the azd environment (run azd provision first)"
resource_group="${resource_group:-$(azd_value AZURE_RESOURCE_GROUP)}"

group_args=()
[[ -n "$resource_group" ]] && group_args=(--resource-group "$resource_group")
account_id="$(az storage account show --name "$account" "${group_args[@]}" --query id --output tsv)"
[[ -n "$account_id" ]] || die "storage account '$account' not found (az login to the right subscription?)"

# role name | scope: the narrowest resource each role is needed on (the same as infra/app/rbac.bicep).
if [[ "$read_only" == true ]]; then
  grants=("Storage Table Data Reader|$account_id")
else
  grants=(
    "Storage Table Data Contributor|$account_id"
    "Storage Queue Data Message Sender|$account_id/queueServices/default/queues/$REQUESTS_QUEUE"
    "Storage Blob Data Contributor|$account_id/blobServices/default/containers/$REPORT_CONTAINER"
  )
fi

for grant in "${grants[@]}"; do
  role="${grant%%|*}" scope="${grant#*|}"
  where="${scope#"$account_id"}"
  where="$account${where:+ ${where#/}}"
  id="$(role_id "$role")"
  held="$(az role assignment list --assignee "$principal_id" --role "$id" --scope "$scope" --query "length(@)" --output tsv)"
  if [[ "${held:-0}" != 0 ]]; then
    echo "$role on $where: already granted"
  elif [[ "$dry_run" == true ]]; then
    echo "$role on $where: would grant"
  else
    az role assignment create --assignee-object-id "$principal_id" --assignee-principal-type "$principal_type" \
      --role "$id" --scope "$scope" --output none
    echo "$role on $where: granted"
  fi
done
echo "done: a new role assignment takes a few minutes to apply; then the admins run az login and the CLI"
