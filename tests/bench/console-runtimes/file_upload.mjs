// The console build's file_upload ran on Node.js 20. What our file_upload does before its first
// event, done the console build's way: the AWS SDK for JavaScript v3's S3 and Secrets Manager
// clients made, the database secret read; then the runtime loop asks for the first event
// (`scripts/bench.py` measures from the process's start to that request).
import { S3Client } from "@aws-sdk/client-s3";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";

const s3 = new S3Client({});
const secrets = new SecretsManagerClient({});
if (process.env.DB_SECRET_ARN) {
  await secrets.send(new GetSecretValueCommand({ SecretId: process.env.DB_SECRET_ARN }));
}
await fetch(`http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next`);
void s3;
