#!/usr/bin/env bash
# The service account disttags-cloudrun runs as: it may read the packument bucket's objects (and list
# them, which tells a missing package from a missing bucket) and read the token-hash secret, nothing else.
# Usage: infra/gcp/iam.sh PROJECT BUCKET
set -euo pipefail
project="${1:?usage: iam.sh PROJECT BUCKET}"
bucket="${2:?usage: iam.sh PROJECT BUCKET}"
account="disttags-reader@$project.iam.gserviceaccount.com"
gcloud iam service-accounts create disttags-reader --project "$project" \
  --display-name "disttags (read-only packuments)" 2>/dev/null || true
gcloud storage buckets add-iam-policy-binding "gs://$bucket" \
  --member "serviceAccount:$account" --role roles/storage.objectViewer
gcloud secrets add-iam-policy-binding disttags-token-hashes --project "$project" \
  --member "serviceAccount:$account" --role roles/secretmanager.secretAccessor
