#!/usr/bin/env bash
# The service account disttags-cloudrun runs as (service.yaml's serviceAccountName): it may read the
# packument bucket's objects and list them (roles/storage.objectViewer on that bucket only: listing a
# package's prefix tells a missing package from a missing bucket) and read the token-hash secret,
# nothing else. Run it after creating the bucket and the secret disttags-token-hashes.
#
# WRITES=on (npm dist-tag add|rm, for the holders of write tokens) grants roles/storage.objectUser on
# the bucket instead: a tag change overwrites {name}/index.json only if it is unchanged since it was
# read, which needs storage.objects.create and storage.objects.delete, not just create. It also lets
# the account read the write-token secret disttags-write-token-hashes, which must exist first. Each
# run removes the bucket role the other setting grants, so WRITES=off takes write access away again.
#   usage: [WRITES=off|on] infra/gcp/iam.sh PROJECT BUCKET
set -euo pipefail
project="${1:?usage: [WRITES=off|on] iam.sh PROJECT BUCKET}"
bucket="${2:?usage: [WRITES=off|on] iam.sh PROJECT BUCKET}"
writes="${WRITES:-off}"
case "$writes" in
  off) role=roles/storage.objectViewer other=roles/storage.objectUser ;;
  on) role=roles/storage.objectUser other=roles/storage.objectViewer ;;
  *)
    echo "iam.sh: WRITES=$writes: use off or on" >&2
    exit 2
    ;;
esac
name=disttags-reader
account="$name@$project.iam.gserviceaccount.com"
member="serviceAccount:$account"
if ! gcloud iam service-accounts describe "$account" --project "$project" >/dev/null 2>&1; then
  gcloud iam service-accounts create "$name" --project "$project" \
    --display-name "disttags (reads the packument bucket)"
fi
gcloud storage buckets add-iam-policy-binding "gs://$bucket" --project "$project" \
  --member "$member" --role "$role"
bound=$(gcloud storage buckets get-iam-policy "gs://$bucket" --project "$project" \
  --flatten "bindings[].members" --filter "bindings.role=\"$other\" AND bindings.members=\"$member\"" \
  --format "value(bindings.role)")
if [ -n "$bound" ]; then
  gcloud storage buckets remove-iam-policy-binding "gs://$bucket" --project "$project" \
    --member "$member" --role "$other"
fi
gcloud secrets add-iam-policy-binding disttags-token-hashes --project "$project" \
  --member "$member" --role roles/secretmanager.secretAccessor
if [ "$writes" = on ]; then
  gcloud secrets add-iam-policy-binding disttags-write-token-hashes --project "$project" \
    --member "$member" --role roles/secretmanager.secretAccessor
  echo "iam.sh: $account reads and writes gs://$bucket, and reads the secrets disttags-token-hashes and disttags-write-token-hashes"
else
  echo "iam.sh: $account reads gs://$bucket and the secret disttags-token-hashes"
fi
