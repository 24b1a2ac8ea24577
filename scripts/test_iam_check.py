"""Unit tests of scripts/iam-check.py's evaluator (run by `make iam`:
.venv/bin/python -m unittest discover -s scripts -p 'test_iam_check.py')."""
import importlib.util
import pathlib
import unittest

here = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("iam_check", here / "iam-check.py")
iam = importlib.util.module_from_spec(spec)
spec.loader.exec_module(iam)

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/connections"


def allow(action, resource, condition=None):
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


class Evaluation(unittest.TestCase):
    def test_actions_match_case_insensitively_and_resources_by_wildcard(self):
        statements = [allow("DynamoDB:get*", f"{TABLE}*")]
        self.assertTrue(iam.allowed(statements, "dynamodb:GetItem", f"{TABLE}/index/byUser", {})[0])
        self.assertFalse(iam.allowed(statements, "dynamodb:PutItem", TABLE, {})[0])
        self.assertFalse(iam.allowed(statements, "dynamodb:GetItem", TABLE.replace("connections", "other"), {})[0])

    def test_a_table_grant_does_not_reach_its_indexes(self):
        # The defect the check found first: connect had PutItem on the table, not Query on byUser.
        statements = [allow(["dynamodb:PutItem", "dynamodb:Query"], TABLE)]
        self.assertFalse(iam.allowed(statements, "dynamodb:Query", f"{TABLE}/index/byUser", {})[0])

    def test_an_explicit_deny_wins(self):
        statements = [allow("dynamodb:*", "*"), {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"}]
        self.assertTrue(iam.allowed(statements, "dynamodb:GetItem", TABLE, {})[0])
        self.assertFalse(iam.allowed(statements, "dynamodb:DeleteItem", TABLE, {})[0])

    def test_leading_keys_hold_for_every_key_of_the_request(self):
        only_buckets = [allow("dynamodb:UpdateItem", TABLE,
                              {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["limit#actions#*"]}})]
        ok = {"dynamodb:LeadingKeys": ["limit#actions#alice"]}
        record = {"dynamodb:LeadingKeys": ["f97yeeMZDoECGqg="]}
        mixed = {"dynamodb:LeadingKeys": ["limit#actions#alice", "limit#posts"]}
        self.assertTrue(iam.allowed(only_buckets, "dynamodb:UpdateItem", TABLE, ok)[0])
        self.assertFalse(iam.allowed(only_buckets, "dynamodb:UpdateItem", TABLE, record)[0])
        self.assertFalse(iam.allowed(only_buckets, "dynamodb:UpdateItem", TABLE, mixed)[0])
        exact = [allow("dynamodb:UpdateItem", TABLE, {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["limit#posts"]}})]
        self.assertTrue(iam.allowed(exact, "dynamodb:UpdateItem", TABLE, {"dynamodb:LeadingKeys": ["limit#posts"]})[0])
        self.assertFalse(iam.allowed(exact, "dynamodb:UpdateItem", TABLE, {"dynamodb:LeadingKeys": ["limit#postsX"]})[0])

    def test_an_operator_or_key_the_check_cannot_evaluate_fails_it(self):
        with self.assertRaises(iam.CheckError):
            iam.allowed([allow("sqs:*", "*", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})], "sqs:SendMessage", "q", {"aws:SourceIp": "1"})
        with self.assertRaises(iam.CheckError):
            iam.allowed([allow("sqs:*", "*", {"StringEquals": {"aws:PrincipalTag/x": "y"}})], "sqs:SendMessage", "q", {})

    def test_not_action_and_not_resource(self):
        statements = [{"Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "NotResource": f"{TABLE}/index/*"}]
        self.assertTrue(iam.allowed(statements, "dynamodb:GetItem", TABLE, {})[0])
        self.assertFalse(iam.allowed(statements, "dynamodb:DeleteItem", TABLE, {})[0])
        self.assertFalse(iam.allowed(statements, "dynamodb:Query", f"{TABLE}/index/byUser", {})[0])


class Requests(unittest.TestCase):
    template = {"Resources": {"ConnectionsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
        "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [{"IndexName": "byUser", "KeySchema": [
            {"AttributeName": "userId", "KeyType": "HASH"}, {"AttributeName": "connectionId", "KeyType": "RANGE"}]}],
    }}}}
    resources = {"ConnectionsTable": {"Ref": "connections"}, "Api": {"Ref": "local-api"},
                 "TokenKeys": {"Ref": "arn:aws:secretsmanager:us-east-1:1:secret:keys-x", "Name": "keys"}}

    def requests(self, call):
        return iam.requests_of(dict(call, function="connect"), self.template, self.resources,
                               {"StageName": "prod"}, "us-east-1", "123456789012")

    def test_an_index_query_is_authorized_on_the_index_with_its_partition_key(self):
        (action, resource, context), = self.requests(
            {"service": "dynamodb", "operation": "Query", "table": "connections", "index": "byUser", "keys": [{"userId": "alice"}]})
        self.assertEqual(action, "dynamodb:Query")
        self.assertEqual(resource, f"{TABLE}/index/byUser")
        self.assertEqual(context, {"dynamodb:LeadingKeys": ["alice"]})

    def test_a_call_without_its_partition_key_cannot_be_checked(self):
        with self.assertRaises(iam.CheckError):
            self.requests({"service": "dynamodb", "operation": "UpdateItem", "table": "connections", "keys": [{"userId": "a"}]})

    def test_batches_are_authorized_as_their_single_action_and_posts_on_the_connection(self):
        (action, resource, _), = self.requests(
            {"service": "sqs", "operation": "SendMessageBatch", "queue_url": "http://127.0.0.1:1/123456789012/deliveries"})
        self.assertEqual((action, resource), ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:deliveries"))
        (action, resource, _), = self.requests(
            {"service": "execute-api", "operation": "DELETE", "host": "127.0.0.1:9", "path": "/prod/@connections/abc%3D"})
        self.assertEqual(action, "execute-api:ManageConnections")
        self.assertEqual(resource, "arn:aws:execute-api:us-east-1:123456789012:local-api/prod/DELETE/@connections/abc%3D")
        (_, resource, _), = self.requests({"service": "secretsmanager", "operation": "GetSecretValue", "secret_id": "keys"})
        self.assertEqual(resource, "arn:aws:secretsmanager:us-east-1:1:secret:keys-x")

    def test_an_unknown_call_fails_the_check(self):
        with self.assertRaises(iam.CheckError):
            self.requests({"service": "unknown", "target": "TrentService.Decrypt"})


if __name__ == "__main__":
    unittest.main()
