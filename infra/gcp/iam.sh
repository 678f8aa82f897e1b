#!/usr/bin/env bash
# The service account disttags-cloudrun runs as (service.yaml's serviceAccountName): it may read the
# packument bucket's objects and list them (roles/storage.objectViewer on that bucket only: listing a
# package's prefix tells a missing package from a missing bucket) and read the token-hash secret,
# nothing else. Run it after creating the bucket and the secret disttags-token-hashes.
#   usage: infra/gcp/iam.sh PROJECT BUCKET
set -euo pipefail
project="${1:?usage: iam.sh PROJECT BUCKET}"
bucket="${2:?usage: iam.sh PROJECT BUCKET}"
name=disttags-reader
account="$name@$project.iam.gserviceaccount.com"
if ! gcloud iam service-accounts describe "$account" --project "$project" >/dev/null 2>&1; then
  gcloud iam service-accounts create "$name" --project "$project" \
    --display-name "disttags (reads the packument bucket)"
fi
gcloud storage buckets add-iam-policy-binding "gs://$bucket" --project "$project" \
  --member "serviceAccount:$account" --role roles/storage.objectViewer
gcloud secrets add-iam-policy-binding disttags-token-hashes --project "$project" \
  --member "serviceAccount:$account" --role roles/secretmanager.secretAccessor
echo "iam.sh: $account reads gs://$bucket and the secret disttags-token-hashes"
