#!/usr/bin/env bash
# RAYPRIV_MLFLOW_ARTIFACTS=s3://my-bucket/mlflow cluster/mlflow/serve.sh
#
# A lean MLflow tracking server for raypriv sweeps: runs in a sqlite database (or any SQLAlchemy
# URL), artifacts proxied to S3 (`--serve-artifacts`), so only this server holds S3 credentials and
# Ray workers need nothing but MLFLOW_TRACKING_URI=http://HOST:PORT. One worker process and no job
# runner (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false): about 0.5 GiB and 4 s to healthy instead of
# ~15 processes and 2.9 GiB with MLflow's defaults. Listens on 127.0.0.1 unless told otherwise.
#
# Settings (environment; none of them is printed):
#   RAYPRIV_MLFLOW_ARTIFACTS      s3://bucket/prefix where artifacts go (required)
#   RAYPRIV_MLFLOW_HOME           folder of the default sqlite store (default ~/.raypriv-mlflow)
#   RAYPRIV_MLFLOW_BACKEND        backend store URI (default sqlite:///$RAYPRIV_MLFLOW_HOME/mlflow.db);
#                                 a Postgres URL with a password belongs in a file or secret, not in shell history
#   RAYPRIV_MLFLOW_HOST           interface to bind (default 127.0.0.1; 0.0.0.0 only on a private network)
#   RAYPRIV_MLFLOW_PORT           port (default 5000)
#   RAYPRIV_MLFLOW_ALLOWED_HOSTS  Host headers to accept besides localhost and private IPs
#                                 (e.g. mlflow.raypriv.svc:5000); MLflow answers 403 to others
#   RAYPRIV_MLFLOW_SKIP_CHECK=1   do not check the bucket before starting
#   MLFLOW_S3_ENDPOINT_URL        an S3-compatible endpoint (MinIO, moto); unset for AWS S3
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role: this server's S3 access
# Extra arguments are passed to `mlflow server` (e.g. --app-name basic-auth).
set -euo pipefail

artifacts=${RAYPRIV_MLFLOW_ARTIFACTS:-}
if [[ $artifacts != s3://?* ]]; then
    echo "serve.sh: set RAYPRIV_MLFLOW_ARTIFACTS to s3://bucket/prefix (where the server stores artifacts)" >&2
    exit 2
fi
home=${RAYPRIV_MLFLOW_HOME:-$HOME/.raypriv-mlflow}
backend=${RAYPRIV_MLFLOW_BACKEND:-sqlite:///$home/mlflow.db}
host=${RAYPRIV_MLFLOW_HOST:-127.0.0.1}
port=${RAYPRIV_MLFLOW_PORT:-5000}
mlflow_bin=$(command -v mlflow) || { echo "serve.sh: no mlflow on PATH (pip install mlflow boto3)" >&2; exit 2; }
mkdir -p "$home"

# Fail now, with a readable message, rather than on the first artifact a trial uploads.
if [[ ${RAYPRIV_MLFLOW_SKIP_CHECK:-0} != 1 ]]; then
    python=$(dirname "$mlflow_bin")/python
    [[ -x $python ]] || python=python3
    "$python" - "$artifacts" <<'EOF'
import os, sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

uri = sys.argv[1]
bucket, _, prefix = uri[len("s3://"):].partition("/")
endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
try:
    boto3.session.Session().client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
except (NoCredentialsError, PartialCredentialsError):
    sys.exit(f"serve.sh: no AWS credentials for {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
             "(or AWS_PROFILE, or an instance role) for this server")
except ClientError as err:
    code = err.response.get("Error", {}).get("Code", "unknown")
    if code == "NoSuchBucket":
        sys.exit(f"serve.sh: S3 bucket {bucket!r} does not exist ({uri}); create it or fix "
                 "RAYPRIV_MLFLOW_ARTIFACTS (and MLFLOW_S3_ENDPOINT_URL for MinIO-style stores)")
    sys.exit(f"serve.sh: S3 refused to list {uri} ({code}); check this server's credentials and bucket policy")
except BotoCoreError as err:
    sys.exit(f"serve.sh: could not reach S3 for {uri}: {err}")
EOF
fi

export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
args=(server --host "$host" --port "$port" --workers 1 --backend-store-uri "$backend"
      --serve-artifacts --artifacts-destination "$artifacts")
if [[ -n ${RAYPRIV_MLFLOW_ALLOWED_HOSTS:-} ]]; then
    # --allowed-hosts replaces MLflow's default list: keep loopback and private addresses (probes, Ray nodes).
    defaults='localhost,localhost:*,127.0.0.1,127.0.0.1:*,10.*,192.168.*,172.1[6-9].*,172.2[0-9].*,172.3[01].*'
    args+=(--allowed-hosts "$RAYPRIV_MLFLOW_ALLOWED_HOSTS,$defaults")
fi
echo "serve.sh: MLflow on http://$host:$port, artifacts proxied to $artifacts" >&2
exec "$mlflow_bin" "${args[@]}" "$@"
