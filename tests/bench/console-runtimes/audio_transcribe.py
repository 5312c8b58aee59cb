"""The console build's audio_transcribe ran on Python 3.12. What our audio_transcribe does before
its first event, done the console build's way: boto3's S3, Transcribe and Secrets Manager clients
made, the database secret read; then the runtime loop asks for the first event
(`scripts/bench.py` measures from the interpreter's start to that request)."""

import os
import urllib.request

import boto3

s3 = boto3.client("s3")
transcribe = boto3.client("transcribe")
secrets = boto3.client("secretsmanager")
if os.environ.get("DB_SECRET_ARN"):
    secrets.get_secret_value(SecretId=os.environ["DB_SECRET_ARN"])
urllib.request.urlopen(f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation/next")
