import boto3


def test_s3_fixture_is_a_real_http_endpoint(s3_endpoint: str, s3_bucket: str) -> None:
    assert s3_endpoint.startswith("http://127.0.0.1:")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    versioning = client.get_bucket_versioning(Bucket=s3_bucket)
    assert versioning["Status"] == "Enabled"
