#!/usr/bin/env python3
"""The IAM check: every AWS call each function made in the recorded scenarios, evaluated
against that function's role as SAM's own translator expands template.yaml, both ways.

Usage: scripts/iam-check.py RESOURCES_JSON CALLS_JSONL [CALLS_JSONL ...] [--report FILE]
(run with .venv/bin/python: needs aws-sam-translator, which aws-sam-cli brings; `make iam`).

- RESOURCES_JSON (scripts/local-aws.py writes it beside its env file) gives what Ref and
  GetAtt Arn mean for each logical id where the scenarios ran (moto), and the parameters.
- Each CALLS_JSONL line is one call a function made (shared/src/adapters/call_log.rs records
  them at the connector every adapter sends through; scripts/invoke-events.sh runs every
  function's real binary with it on).
- Beside the recorded calls, each function makes the calls Lambda makes with its role:
  polling its SQS event source (ReceiveMessage, DeleteMessage, GetQueueAttributes), writing
  its logs and X-Ray segments.

It fails (exit 1), naming function, action and resource, when:
- a call is not allowed by the function's role (no Allow, or an explicit Deny, with the
  actions' and resources' wildcards and the condition keys the template uses);
- a grant of the template's own statements (action x resource) was used by no call, unless
  `UNUSED_ALLOWED` says why no scenario can make it;
- a call cannot be understood (an unknown service, a DynamoDB call without its partition key).

AWS's managed policies that SAM attaches are taken as AWS publishes them (MANAGED_POLICIES);
their grants are AWS's, so only the template's own statements are checked for use.
"""
import fnmatch
import json
import os
import re
import sys
import urllib.parse

# AWS's managed policies SAM attaches, as published in the AWS Managed Policy reference
# (docs.aws.amazon.com/aws-managed-policy/latest/reference/<name>.html).
MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        },
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
}

# Grants of the template's statements that no recorded scenario can make, each with why.
# Key: (function logical id, action, resource as resolved). Keep this short: every entry is
# a permission no test proves is needed.
UNUSED_ALLOWED = {}

# The IAM action each SQS operation is authorized as (a batch is authorized as its single form).
SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


class CheckError(Exception):
    """A call or a policy the check cannot evaluate: fails the check, never passes it."""


# ---------------------------------------------------------------- the template, as SAM expands it


def translate(template_path, parameters, region, account):
    """template.yaml through aws-sam-translator, as `sam deploy` has CloudFormation do it."""
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    class NoManagedPolicyLookups:
        def load(self):
            return {}

    with open(template_path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    # sam package replaces CodeUri with the uploaded artifact; the translator insists on one.
    template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://bucket/code.zip"
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.get("Properties", {}).pop("CodeUri", None)
    values = dict(parameters)
    values.update({"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws"})
    return transform(template, values, NoManagedPolicyLookups())


class Resolver:
    """CloudFormation's intrinsic functions with the scenario's values."""

    def __init__(self, template, resources, parameters, region, account):
        self.template = template
        self.resources = resources
        self.parameters = parameters
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "switchboard",
            "AWS::NoValue": None,
        }

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources and "Ref" in self.resources[name]:
            return self.resources[name]["Ref"]
        if self.template["Resources"].get(name, {}).get("Type") == "AWS::Logs::LogGroup":
            return f"/switchboard/{name}"  # CloudFormation names it; only the platform calls use it
        raise CheckError(f"no local value for Ref {name}")

    def get_att(self, name, attribute):
        values = self.resources.get(name, {})
        if attribute in values:
            return values[attribute]
        raise CheckError(f"no local value for GetAtt {name}.{attribute}")

    def condition(self, name):
        return bool(self.resolve(self.template["Conditions"][name]))

    def sub(self, text, variables):
        def one(match):
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                name, attribute = value if isinstance(value, list) else value.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::Sub":
                if isinstance(value, list):
                    return self.sub(value[0], {k: self.resolve(v) for k, v in value[1].items()})
                return self.sub(value, {})
            if key == "Fn::Join":
                return value[0].join(str(x) for x in self.resolve(value[1]))
            if key == "Fn::If":
                name, then, otherwise = value
                return self.resolve(then if self.condition(name) else otherwise)
            if key == "Fn::Equals":
                a, b = self.resolve(value)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(value[0])
            if key == "Fn::And":
                return all(self.resolve(value))
            if key == "Fn::Or":
                return any(self.resolve(value))
            if key == "Condition":
                return self.condition(value)
            if key.startswith("Fn::"):
                raise CheckError(f"cannot resolve {key}")
        return {k: self.resolve(v) for k, v in node.items()}


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def roles_of_functions(template, resolver):
    """Function logical id -> (its statements, each tagged with where it comes from)."""
    roles = {}
    resources = template["Resources"]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role = resource["Properties"]["Role"]
        if not (isinstance(role, dict) and "Fn::GetAtt" in role):
            raise CheckError(f"{logical_id}: role {role!r} is not a role of this template")
        role_id = role["Fn::GetAtt"][0]
        properties = resources[role_id]["Properties"]
        statements = []
        for policy in properties.get("Policies", []):
            document = resolver.resolve(policy["PolicyDocument"])
            for statement in as_list(document.get("Statement")):
                statements.append(dict(statement, _source=policy["PolicyName"]))
        for arn in properties.get("ManagedPolicyArns", []):
            arn = resolver.resolve(arn)
            if arn not in MANAGED_POLICIES:
                raise CheckError(f"{logical_id}: managed policy {arn} is not known to the check; add it")
            statements.extend(dict(s, _source=arn, _managed=True) for s in MANAGED_POLICIES[arn])
        roles[logical_id] = statements
    return roles


def platform_calls(template, resolver):
    """Function logical id -> the calls Lambda makes with the function's role."""
    calls = {}
    resources = template["Resources"]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        group = resolver.resolve(resource["Properties"].get("LoggingConfig", {}).get("LogGroup"))
        group = group or f"/aws/lambda/{logical_id}"
        arn = f"arn:aws:logs:{resolver.pseudo['AWS::Region']}:{resolver.pseudo['AWS::AccountId']}:log-group:{group}"
        calls[logical_id] = [
            ("logs:CreateLogStream", f"{arn}:*", {}),
            ("logs:PutLogEvents", f"{arn}:log-stream:*", {}),
        ]
        if resource["Properties"].get("TracingConfig", {}).get("Mode") == "Active":
            calls[logical_id] += [("xray:PutTraceSegments", "*", {}), ("xray:PutTelemetryRecords", "*", {})]
    for resource in resources.values():
        if resource["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        function = resource["Properties"]["FunctionName"]["Ref"]
        source = resolver.resolve(resource["Properties"]["EventSourceArn"])
        if ":sqs:" in source:
            for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
                calls[function].append((action, source, {}))
    return calls


# ---------------------------------------------------------------- recorded calls -> IAM requests


def pascal(name):
    """notify-user -> NotifyUserFunction: functions/<name> is <Name>Function in the template."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("-")) + "Function"


def partition_keys(template, table_name, index_name, resources):
    """The partition key attribute of a table (or of one of its indexes)."""
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        if resources.get(logical_id, {}).get("Ref") != table_name:
            continue
        properties = resource["Properties"]
        schema = properties["KeySchema"]
        if index_name:
            indexes = {i["IndexName"]: i for i in properties.get("GlobalSecondaryIndexes", [])}
            if index_name not in indexes:
                raise CheckError(f"table {table_name} has no index {index_name}")
            schema = indexes[index_name]["KeySchema"]
        return [k["AttributeName"] for k in schema if k["KeyType"] == "HASH"][0]
    raise CheckError(f"no table of the template is named {table_name}")


def requests_of(call, template, resources, parameters, region, account):
    """One recorded call -> [(IAM action, resource ARN, condition context)]."""
    service = call.get("service")
    operation = call.get("operation")
    if service == "dynamodb":
        table = call.get("table")
        if not isinstance(table, str):
            raise CheckError(f"a DynamoDB {operation} without a table: {call}")
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{table}"
        index = call.get("index")
        if index:
            arn += f"/index/{index}"
        context = {}
        if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem", "Query",
                         "BatchWriteItem", "BatchGetItem"):
            key = partition_keys(template, table, index, resources)
            values = []
            for keys in call.get("keys", []):
                if key not in keys:
                    raise CheckError(
                        f"{call['function']}: {operation} on {table} without its partition key {key} "
                        "(shared/src/adapters/call_log.rs KEY_ATTRIBUTES)"
                    )
                values.append(str(keys[key]))
            context["dynamodb:LeadingKeys"] = values
        return [(f"dynamodb:{operation}", arn, context)]
    if service == "sqs":
        url = call.get("queue_url") or ""
        path = urllib.parse.urlparse(url).path.strip("/").split("/")
        if len(path) != 2:
            raise CheckError(f"{call['function']}: {operation} on a queue URL that names no queue: {url!r}")
        queue_account, name = path
        return [(f"sqs:{SQS_ACTIONS.get(operation, operation)}", f"arn:aws:sqs:{region}:{queue_account}:{name}", {})]
    if service == "events":
        out = []
        for bus in call.get("buses", []):
            arn = bus if bus.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{bus}"
            out.append((f"events:{operation}", arn, {}))
        return out
    if service == "secretsmanager":
        secret = call.get("secret_id") or ""
        if not secret.startswith("arn:"):
            named = [r.get("Arn", r.get("Ref")) for r in resources.values() if r.get("Name") == secret]
            if not named:
                raise CheckError(f"{call['function']}: secret {secret!r} is not one of the template's")
            secret = named[0]
        return [(f"secretsmanager:{operation}", secret, {})]
    if service == "execute-api":
        host, path = call.get("host", ""), call.get("path", "")
        match = re.match(r"^([a-z0-9]+)\.execute-api\.", host)
        api = match.group(1) if match else resources["Api"]["Ref"]
        stage, _, rest = path.lstrip("/").partition("/@connections/")
        if not rest:
            stage, rest = parameters["StageName"], path.split("/@connections/", 1)[1]
        return [(
            "execute-api:ManageConnections",
            f"arn:aws:execute-api:{region}:{account}:{api}/{stage}/{operation}/@connections/{rest}",
            {},
        )]
    raise CheckError(f"{call.get('function')}: a call the check does not know: {call}")


# ---------------------------------------------------------------- policy evaluation


def matches(pattern, value, case_sensitive=True):
    """IAM's wildcards: * any run of characters, ? one character."""
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def condition_holds(condition, context):
    """The condition operators this template uses; any other fails the check (never passes)."""
    for operator, keys in condition.items():
        for key, expected in keys.items():
            expected = as_list(expected)
            if key not in context:
                raise CheckError(f"condition key {key} is not in the request context")
            values = as_list(context[key])
            qualifier, _, base = operator.rpartition(":")
            if base in ("StringEquals", "StringLike"):
                test = (lambda v: v in expected) if base == "StringEquals" else (
                    lambda v: any(matches(p, v) for p in expected))
            else:
                raise CheckError(f"condition operator {operator} is not supported by the check")
            if qualifier == "ForAllValues":
                ok = all(test(v) for v in values)
            elif qualifier == "ForAnyValue":
                ok = any(test(v) for v in values)
            elif qualifier == "":
                if len(values) != 1:
                    raise CheckError(f"{operator} on the multi-valued key {key}")
                ok = test(values[0])
            else:
                raise CheckError(f"condition qualifier {qualifier} is not supported by the check")
            if not ok:
                return False
    return True


def statement_matches(statement, action, resource, context):
    if "NotAction" in statement:
        action_ok = not any(matches(p, action, False) for p in as_list(statement["NotAction"]))
    else:
        action_ok = any(matches(p, action, False) for p in as_list(statement.get("Action")))
    if "NotResource" in statement:
        resource_ok = not any(matches(p, resource) for p in as_list(statement["NotResource"]))
    else:
        resource_ok = any(matches(p, resource) for p in as_list(statement.get("Resource")))
    if not (action_ok and resource_ok):
        return False
    return condition_holds(statement.get("Condition", {}), context)


def allowed(statements, action, resource, context):
    """(allowed, the statements that allowed it): an explicit Deny wins over every Allow."""
    allows = []
    for statement in statements:
        if statement_matches(statement, action, resource, context):
            if statement["Effect"] == "Deny":
                return False, []
            allows.append(statement)
    return bool(allows), allows


def grants(statement):
    """The (action, resource) pairs one Allow statement grants, as written."""
    if statement["Effect"] != "Allow" or "NotAction" in statement or "NotResource" in statement:
        return []
    return [(a, r) for a in as_list(statement.get("Action")) for r in as_list(statement.get("Resource"))]


# ---------------------------------------------------------------- the check


def check(template, resolver, calls, resources, parameters, region, account):
    """(problems, report lines)."""
    problems, report = [], []
    roles = roles_of_functions(template, resolver)
    platform = platform_calls(template, resolver)
    used = {f: set() for f in roles}
    seen = {f: set() for f in roles}
    requests = {f: list(platform.get(f, [])) for f in roles}
    for call in calls:
        function = pascal(call.get("function", "unknown"))
        if function not in roles:
            problems.append(f"{call.get('function')}: no function {function} in the template")
            continue
        try:
            requests[function] += requests_of(call, template, resources, parameters, region, account)
        except CheckError as e:
            problems.append(str(e))
    for function, statements in sorted(roles.items()):
        for action, resource, context in requests[function]:
            try:
                ok, by = allowed(statements, action, resource, context)
            except CheckError as e:
                problems.append(f"{function}: {action} on {resource}: {e}")
                continue
            key = (action, resource, json.dumps(context, sort_keys=True))
            if key in seen[function]:
                continue
            seen[function].add(key)
            if not ok:
                leading = context.get("dynamodb:LeadingKeys")
                problems.append(
                    f"{function}: {action} on {resource}"
                    + (f" (partition keys {sorted(set(leading))})" if leading else "")
                    + " is not allowed by its role"
                )
            for statement in by:
                for grant in grants(statement):
                    if statement_matches(dict(statement, Action=grant[0], Resource=grant[1]), action, resource, context):
                        used[function].add((statement["_source"], grant))
        report.append(f"## {function}")
        report.append("calls (action, resource):")
        for action, resource, context in sorted(
            {(a, r, json.dumps(c, sort_keys=True)) for a, r, c in requests[function]}
        ):
            report.append(f"  {action} {resource} {context if context != '{}' else ''}".rstrip())
        report.append("grants of the template (unused marked):")
        for statement in statements:
            if statement.get("_managed"):
                continue
            for grant in grants(statement):
                is_used = (statement["_source"], grant) in used[function]
                reason = UNUSED_ALLOWED.get((function, grant[0], grant[1]))
                mark = "used" if is_used else ("unused, allowed: " + reason if reason else "UNUSED")
                condition = f" if {json.dumps(statement['Condition'])}" if "Condition" in statement else ""
                report.append(f"  {grant[0]} {grant[1]}{condition}: {mark}")
                if not is_used and not reason:
                    problems.append(
                        f"{function}: grants {grant[0]} on {grant[1]}{condition}, which no scenario uses "
                        "(remove it, cover it with a scenario, or say why in UNUSED_ALLOWED)"
                    )
        report.append("")
    return problems, report


def main(argv):
    report_path = None
    if "--report" in argv:
        i = argv.index("--report")
        report_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) < 2:
        sys.exit(__doc__)
    with open(argv[0], encoding="utf-8") as f:
        scenario = json.load(f)
    region, account = scenario["region"], scenario["account"]
    parameters, resources = scenario["parameters"], scenario["resources"]
    calls = []
    for path in argv[1:]:
        with open(path, encoding="utf-8") as f:
            calls += [json.loads(line) for line in f if line.strip()]
    if not calls:
        sys.exit("iam-check: no calls recorded; run scripts/invoke-events.sh first")
    template = translate("template.yaml", parameters, region, account)
    resolver = Resolver(template, resources, parameters, region, account)
    problems, report = check(template, resolver, calls, resources, parameters, region, account)
    if report_path:
        with open(report_path, "w", encoding="utf-8") as f:
            f.write("\n".join(report) + "\n")
    functions = len({c["function"] for c in calls})
    if problems:
        print(f"iam-check: {len(problems)} problem(s) in {len(calls)} calls of {functions} functions:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"iam-check: {len(calls)} calls of {functions} functions, each allowed by its role; every grant used")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
