#!/usr/bin/env python3
"""The README's deploy walk-through, driven: runs the real `sam deploy --guided` in a
pseudo-terminal against moto and answers every prompt as the README tells a user to, so the
README and SAM's prompts cannot drift apart (issue 23).

Usage: scripts/with-moto.sh .venv/bin/python scripts/guided-deploy-test.py [--template FILE]
(`make deploy-walkthrough`). Needs MOTO_ENDPOINT (scripts/with-moto.sh exports it) and the
SAM CLI beside this Python (the project's .venv). --template checks another template (the
default: the repository's template.yaml); the run happens in a temporary directory, so the
repository's samconfig.toml and .aws-sam/ are never touched.

No Rust build: the temporary directory holds what `sam build` leaves, made with SAM's own
code (ApplicationBuilder.update_template, move_template): .aws-sam/build/template.yaml with
each function's CodeUri pointing at its own directory holding a stand-in `bootstrap`, and a
copy of samconfig.toml. `sam deploy --guided` then finds the built template as it does after
`sam build`.

The walk-through, in the order SAM asks (the README shows the same list):
  Stack Name [switchboard]                      Enter
  AWS Region [<your region>]                    Enter
  Parameter <name> [<default>]                  Enter, for every template parameter, in the
                                                template's order, each showing its default
  Confirm changes before deploy [Y/n]           Enter
  Allow SAM CLI IAM role creation [Y/n]         Enter
  Disable rollback [y/N]                        Enter
  Save arguments to configuration file [Y/n]    Enter
  SAM configuration file [samconfig.toml]       Enter
  SAM configuration environment [default]       Enter
  Deploy this changeset? [y/N]                  y
Fails on any other prompt (a NoEcho `Parameter TokenSecret:` with no default, "... has no
authentication. Is this okay?"), on a prompt shown twice (click asks a prompt without a
default again on empty input: Enter loops), on a parameter prompt whose default is not the
template's, and when SAM stops before the change set. Every wait is bounded: PROMPT_TIMEOUT
per prompt or step, RUN_TIMEOUT for the whole run.

Against moto (5.2.5), after the prompts, asserted: SAM creates its managed stack
aws-sam-cli-managed-default through a CloudFormation change set; every function's code and the
packaged template are uploaded to its bucket; the change set is created with the template's
parameters and both secrets; SAM asks "Deploy this changeset?". Two moto gaps are worked around:
- a stack made by executing a change set gets no Outputs in moto, so SAM refuses its own
  managed stack ("missing Tags and/or Outputs information"): the test then makes that stack
  again from SAM's own template with CreateStack and runs the whole walk-through a second time;
- moto finds a TemplateURL's bucket in the URL's path only on a "localhost" host, so SAM is
  pointed at moto as localhost.
Reported, not asserted: what executing the change set does. moto does not expand the
AWS::Serverless-2016-10-31 transform, so ExecuteChangeSet fails inside moto (HTTP 500:
KeyError 'FunctionName' in its AWS::Lambda::Permission model, the AWS::Serverless::Function it
refers to never having been made) and SAM stops with "Unable to parse response".
"""
import argparse
import json
import os
import pathlib
import pty
import re
import select
import shutil
import signal
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
PROMPT_TIMEOUT = 30  # seconds: each prompt, and each step between two outputs
RUN_TIMEOUT = 100  # seconds: each sam run (there are at most two; about 20 s each)
QUIET = 0.15  # seconds without output after "...: " before it counts as a prompt
STACK = "switchboard"  # samconfig.toml's stack_name
REGION = "us-east-1"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A click prompt: "\t<label> [<default>]: " or "\t<label>: ", the cursor after it.
PROMPT = re.compile(r"^\s*(?P<label>[^\[\n]*?[^\s\[])(?: \[(?P<default>[^\]\n]*)\])?: $")


class Failed(Exception):
    pass


def built_project(template, workdir):
    """What `sam build` leaves in workdir, without building: SAM's own template rewrite,
    every function's CodeUri a directory with a stand-in bootstrap."""
    from samcli.commands._utils.template import move_template
    from samcli.lib.build.app_builder import ApplicationBuilder
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    shutil.copy(template, workdir / "template.yaml")
    shutil.copy(ROOT / "samconfig.toml", workdir / "samconfig.toml")
    build = workdir / ".aws-sam" / "build"
    stacks, _ = SamLocalStackProvider.get_stacks(str(workdir / "template.yaml"))
    [stack] = stacks
    artifacts = {}
    for logical_id, resource in stack.template_dict["Resources"].items():
        if resource.get("Type") == "AWS::Serverless::Function":
            directory = build / logical_id
            directory.mkdir(parents=True)
            bootstrap = directory / "bootstrap"
            bootstrap.write_text(f"#!/bin/sh\n# stand-in for {logical_id}'s bootstrap\nexit 1\n")
            bootstrap.chmod(0o755)
            artifacts[logical_id] = str(directory)
    built = ApplicationBuilder.update_template(stack, artifacts, {})
    move_template(stack.location, str(build / "template.yaml"), built)
    return build / "template.yaml", sorted(artifacts)


def template_parameters(template):
    from samcli.yamlhelper import yaml_parse

    parameters = yaml_parse(pathlib.Path(template).read_text())["Parameters"]
    return [(name, p) for name, p in parameters.items()]


def walkthrough(parameters):
    """(label, default shown, answer) for each prompt, in SAM's order."""
    steps = [("Stack Name", STACK, ""), ("AWS Region", REGION, "")]
    for name, p in parameters:
        # SAM shows str(Default); a NoEcho parameter it asks with no default at all.
        steps.append((f"Parameter {name}", str(p.get("Default", "")), ""))
    steps += [
        ("Confirm changes before deploy", "Y/n", ""),
        ("Allow SAM CLI IAM role creation", "Y/n", ""),
        ("Disable rollback", "y/N", ""),
        ("Save arguments to configuration file", "Y/n", ""),
        ("SAM configuration file", "samconfig.toml", ""),
        ("SAM configuration environment", "default", ""),
    ]
    return steps


CHANGESET_PROMPT = ("Deploy this changeset?", "y/N", "y")


class Sam:
    """`sam deploy --guided` in a pseudo-terminal (pty.fork: it is the session leader and the
    pty its controlling terminal, so a hidden prompt's getpass reads /dev/tty as for a user)."""

    def __init__(self, workdir, env, log):
        self.log = log
        self.pid = self.fd = None
        self.text = ""  # everything read, ANSI codes and \r removed
        self.eof = False
        self.status = None
        self.started = time.monotonic()
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.chdir(workdir)
                os.execve(str(BIN / "sam"), [str(BIN / "sam"), "deploy", "--guided"], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd

    def read(self, timeout):
        """Reads what arrives within timeout; False once the terminal is closed."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: every process holding the pty has gone
            data = b""
        if not data:
            self.eof = True
            return False
        chunk = data.decode("utf-8", "replace")
        self.log.write(chunk)
        self.log.flush()
        self.text += ANSI.sub("", chunk).replace("\r\n", "\n").replace("\r", "\n")
        return True

    def remaining(self):
        return RUN_TIMEOUT - (time.monotonic() - self.started)

    def next_prompt(self, after):
        """The next prompt shown after offset `after` into self.text, as (label, default,
        offset past it), or None if sam exits first. Fails after PROMPT_TIMEOUT without one."""
        deadline = time.monotonic() + min(PROMPT_TIMEOUT, self.remaining())
        while True:
            tail = self.text[after:].rsplit("\n", 1)[-1]
            match = PROMPT.match(tail)
            if match:
                # Nothing more for QUIET: sam waits for an answer.
                quiet_until = time.monotonic() + QUIET
                length = len(self.text)
                while time.monotonic() < quiet_until and self.read(quiet_until - time.monotonic()):
                    if len(self.text) != length:
                        break
                if len(self.text) == length:
                    return match["label"], match["default"], len(self.text)
                continue
            if time.monotonic() > deadline:
                what = "the whole run" if self.remaining() <= 0 else f"{PROMPT_TIMEOUT} s"
                raise Failed(f"no prompt and no exit within {what}; last output: {tail[-200:]!r}")
            if not self.read(deadline - time.monotonic()):
                return None

    def answer(self, text):
        os.write(self.fd, text.encode() + b"\r")

    def wait_for(self, pattern, after=0):
        """Reads until pattern appears after offset `after` (the match) or sam exits (None)."""
        deadline = time.monotonic() + min(PROMPT_TIMEOUT, self.remaining())
        while True:
            found = re.search(pattern, self.text[after:])
            if found:
                return found
            if time.monotonic() > deadline:
                raise Failed(f"waited {PROMPT_TIMEOUT} s for {pattern!r}")
            if not self.read(deadline - time.monotonic()):
                return None

    def finish(self):
        """Reads to the end (bounded by RUN_TIMEOUT); sam's exit status (negative: killed)."""
        while self.remaining() > 0 and self.read(self.remaining()):
            pass
        # The terminal closes as sam exits: give it a moment to be reaped.
        for _ in range(50 if self.eof else 0):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.1)
        self.stop()
        return self.status

    def stop(self):
        if self.status is None and self.pid is not None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            for _ in range(50):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.status = os.waitstatus_to_exitcode(status)
                    break
                time.sleep(0.1)
            else:
                os.killpg(self.pid, signal.SIGKILL)
                self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def environment(home, endpoint):
    env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),  # SAM's ~/.aws-sam, no ~/.aws: nothing of the developer's
        "TERM": "xterm",
        "LANG": "C.UTF-8",
        # moto reads a TemplateURL's bucket from its path only when the host says "localhost"
        # (else from the host name's first label), and SAM's URL is its S3 endpoint's.
        "AWS_ENDPOINT_URL": endpoint.replace("//127.0.0.1:", "//localhost:"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "SAM_CLI_TELEMETRY": "0",
    }
    # SAM checks PyPI for a newer version once a week (up to 5 s): it checked just now.
    (home / ".aws-sam").mkdir()
    (home / ".aws-sam" / "metadata.json").write_text(json.dumps({"lastVersionCheck": time.time()}))
    return env


def drive_prompts(sam, steps):
    """Answers the guided prompts; fails on an unexpected, repeated or wrongly defaulted one.
    Returns the prompts seen."""
    seen = []
    problems = []
    offset = 0
    for label, default, answer in steps:
        prompt = sam.next_prompt(offset)
        if prompt is None:
            raise Failed(f"sam exited before the prompt {label!r}; prompts so far: {seen}")
        shown, shown_default, offset = prompt
        if shown in (s for s, _ in seen):
            raise Failed(
                f"the prompt {shown!r} is shown twice: SAM asks it again after the walk-through's "
                f"answer (a prompt without a default re-prompts on Enter forever)"
                + (f"; before that: {'; '.join(problems)}" if problems else "")
            )
        seen.append((shown, shown_default))
        if shown != label:
            raise Failed(
                f"unexpected prompt {shown!r} [{shown_default}] where the walk-through expects "
                f"{label!r}; prompts so far: {[s for s, _ in seen]}"
            )
        if shown_default is None:
            # SAM asks a NoEcho parameter with no default: Enter cannot take one. Note it and
            # answer as the walk-through says, to see what SAM does next.
            problems.append(
                f"{shown!r} shows no default (SAM asks NoEcho parameters so), the template's is {default!r}"
            )
        elif shown_default != default:
            problems.append(f"{shown!r} shows default {shown_default!r}, the template's is {default!r}")
        sam.answer(answer)
    if problems:
        raise Failed("; ".join(problems))
    return seen, offset


MANAGED = "aws-sam-cli-managed-default"
# moto 5.2.5 creates a stack from an executed change set without the template's Outputs; SAM
# creates its managed stack that way and then refuses it for lacking them.
MOTO_MANAGED_STACK = r"Error: Stack aws-sam-cli-managed-default is missing Tags and/or Outputs information"


def cloudformation(endpoint):
    import boto3

    return boto3.client(
        "cloudformation",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def check_moto(endpoint, functions, parameters_of_template):
    """What the run left in moto: returns (facts, failures)."""
    import boto3

    cfn = cloudformation(endpoint)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    facts, failures = [], []
    try:
        managed = cfn.describe_stacks(StackName=MANAGED)["Stacks"][0]
    except Exception as e:  # noqa: BLE001
        failures.append(f"no managed stack {MANAGED}: {e}")
        return facts, failures
    facts.append(f"managed stack {MANAGED}: {managed['StackStatus']}")
    if managed["StackStatus"] != "CREATE_COMPLETE":
        failures.append(f"managed stack is {managed['StackStatus']}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in managed.get("Outputs", [])}
    bucket = outputs.get("SourceBucket")
    if not bucket:
        failures.append("the managed stack has no SourceBucket output")
        return facts, failures
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{STACK}/").get("Contents", [])]
    zips = [k for k in keys if not k.endswith(".template")]
    templates = [k for k in keys if k.endswith(".template")]
    facts.append(f"bucket {bucket}: {len(zips)} code objects, {len(templates)} template(s) under {STACK}/")
    # One zip per function (functions with identical code share one object: the stand-ins
    # differ by their comment line, so they do not).
    if len(zips) != len(functions):
        failures.append(f"{len(zips)} code objects uploaded for {len(functions)} functions: {keys}")
    if len(templates) != 1:
        failures.append(f"uploaded templates: {templates}")
    try:
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    except Exception as e:  # noqa: BLE001
        failures.append(f"no stack {STACK}: {e}")
        return facts, failures
    facts.append(f"stack {STACK}: {stack['StackStatus']} ({stack.get('StackStatusReason', '')})")
    # moto lists every stack's change sets, whatever StackName says.
    change_sets = [c for c in cfn.list_change_sets(StackName=STACK)["Summaries"] if c["StackName"] == STACK]
    facts.append(
        "change sets: "
        + ", ".join(f"{c['ChangeSetName']} {c['Status']} {c.get('ExecutionStatus', '')}" for c in change_sets)
    )
    if len(change_sets) != 1 or change_sets[0]["Status"] != "CREATE_COMPLETE":
        failures.append(f"change sets of {STACK}: {change_sets}")
    else:
        described = cfn.describe_change_set(ChangeSetName=change_sets[0]["ChangeSetId"], StackName=STACK)
        given = sorted(p["ParameterKey"] for p in described.get("Parameters", []))
        if given != sorted(name for name, _ in parameters_of_template):
            failures.append(f"the change set's parameters {given} are not the template's")
        added = {
            c["ResourceChange"]["LogicalResourceId"]
            for c in described.get("Changes", [])
            if c["ResourceChange"]["Action"] == "Add"
        }
        facts.append(
            f"change set {change_sets[0]['ChangeSetName']}: {len(given)} parameters, "
            f"{len(added)} resources to add"
        )
        for secret in ("TokenKeys", "WebhookSecretValue"):
            if secret not in added:
                failures.append(f"the change set does not add {secret}")
    events = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
    failed = [e for e in events if e["ResourceStatus"].endswith("FAILED")]
    complete = {e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "CREATE_COMPLETE"}
    facts.append(f"stack events: {len(events)}, {len(complete)} resources CREATE_COMPLETE, {len(failed)} failed")
    for e in failed[:5]:
        reason = e.get("ResourceStatusReason", "")
        facts.append(f"  {e['LogicalResourceId']} ({e['ResourceType']}): {e['ResourceStatus']} {reason}")
    return facts, failures


def remake_managed_stack(endpoint):
    """The managed stack again, from SAM's own template and tag, with CreateStack (which moto
    gives its Outputs) instead of a change set."""
    from samcli.lib.bootstrap.bootstrap import _get_stack_template

    cfn = cloudformation(endpoint)
    cfn.delete_stack(StackName=MANAGED)
    cfn.create_stack(
        StackName=MANAGED,
        TemplateBody=_get_stack_template(),
        Tags=[{"Key": "ManagedStackSource", "Value": "AwsSamCli"}],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cfn.describe_stacks(StackName=MANAGED)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE" or not stack.get("Outputs"):
        raise Failed(f"CreateStack of {MANAGED} in moto: {stack}")


def run(tmp, name, template, endpoint, steps_of, sams):
    """One `sam deploy --guided` in a fresh copy of the built project: the prompts, then what
    follows them until sam exits. Returns (sam, prompts seen, offset after the prompts)."""
    workdir, home = tmp / name / "project", tmp / name / "home"
    workdir.mkdir(parents=True)
    home.mkdir()
    built, functions = built_project(template, workdir)
    log = open(tmp / name / "sam.log", "w", encoding="utf-8")
    sam = Sam(workdir, environment(home, endpoint), log)
    sam.workdir, sam.built, sam.functions, sam.log_file = workdir, built, functions, log
    sams.append(sam)
    seen, offset = drive_prompts(sam, steps_of(built))
    return sam, seen, offset


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default=str(ROOT / "template.yaml"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    endpoint = os.environ.get("MOTO_ENDPOINT")
    if not endpoint:
        sys.exit("guided-deploy-test.py: no MOTO_ENDPOINT (run it under scripts/with-moto.sh)")

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="guided-deploy."))
    started = time.monotonic()
    steps_of = lambda built: walkthrough(template_parameters(built))  # noqa: E731
    sams = []
    try:
        # First run, as on a fresh account: SAM creates its managed stack itself.
        sam, seen, offset = run(tmp, "first", pathlib.Path(args.template), endpoint, steps_of, sams)
        print(f"walk-through: {len(seen)} prompts, each answered as the README says:")
        for label, default in seen:
            print(f"  {label} [{default}]")
        for pattern in (
            r"Looking for resources needed for deployment:",
            r"Creating the required resources\.\.\.",
            r"Successfully created!",
        ):
            found = sam.wait_for(pattern, offset)
            if not found:
                raise Failed(f"sam exited before {pattern!r}: {sam.text[-600:]!r}")
            offset += found.end()
        managed = cloudformation(endpoint).describe_stacks(StackName=MANAGED)["Stacks"][0]
        tags = {t["Key"]: t["Value"] for t in managed.get("Tags", [])}
        if managed["StackStatus"] != "CREATE_COMPLETE" or tags.get("ManagedStackSource") != "AwsSamCli":
            raise Failed(f"{MANAGED} after SAM created it: {managed}")
        print(f"SAM created {MANAGED} through a change set: {managed['StackStatus']}")
        refused = sam.wait_for(MOTO_MANAGED_STACK + r"|Managed S3 bucket: ", offset)
        if refused and refused.group(0).startswith("Error"):
            sam.finish()
            print(
                f"  and refused it (moto gives a change-set-created stack no Outputs): "
                f"{refused.group(0)[len('Error: '):]}...; sam exited {sam.status}"
            )
            # Second run: the managed stack as CreateStack makes it, so SAM goes on.
            remake_managed_stack(endpoint)
            sam, seen_again, offset = run(
                tmp, "second", pathlib.Path(args.template), endpoint, steps_of, sams
            )
            if seen_again != seen:
                raise Failed(f"the second run's prompts differ: {seen_again}")
            print(f"second run, {MANAGED} made with CreateStack: the same {len(seen)} prompts")

        # After the prompts: the managed bucket, the upload, the change set.
        milestones = [
            ("managed S3 bucket", r"Managed S3 bucket: (\S+)"),
            ("arguments saved", r"Saved arguments to config file"),
            ("code upload", r"Uploading to " + STACK + r"/"),
            ("change set creation", r"Waiting for changeset to be created"),
            ("change set created", r"Changeset created successfully\. (\S+)"),
        ]
        reached = []
        for name, pattern in milestones:
            found = sam.wait_for(pattern, offset)
            if not found:
                raise Failed(
                    f"sam exited before {name}; reached: {reached or 'nothing after the prompts'}; "
                    f"last output: {sam.text[-600:]!r}"
                )
            reached.append(name)
            offset += found.end()
        print("reached: " + ", ".join(reached))

        prompt = sam.next_prompt(offset)
        if prompt is None:
            raise Failed(f"sam exited without asking {CHANGESET_PROMPT[0]!r}")
        label, default, offset = prompt
        if (label, default) != CHANGESET_PROMPT[:2]:
            raise Failed(
                f"unexpected prompt {label!r} [{default}] where {CHANGESET_PROMPT[0]!r} was expected"
            )
        print(f"  {label} [{default}] -> {CHANGESET_PROMPT[2]}")
        sam.answer(CHANGESET_PROMPT[2])
        # Creating the stack: on AWS minutes, against moto how far moto gets (reported, not
        # asserted). No prompt may follow: one would hold sam until RUN_TIMEOUT.
        status = sam.finish()
        after = sam.text[offset:]
        if status < 0:
            raise Failed(f"sam was still running after {RUN_TIMEOUT} s: {after[-600:]!r}")
        errors = [line.strip() for line in after.splitlines() if line.startswith("Error:")]
        outcome = [line.strip() for line in after.splitlines() if "Successfully created/updated stack" in line]
        result = "; ".join(errors or outcome or ["no result line"])
        print(f"sam exited {status} after {time.monotonic() - started:.0f} s: {result}")
        saved = (sam.workdir / "samconfig.toml").read_text()
        for name, _ in template_parameters(sam.built):
            if f"{name}=" not in saved:
                raise Failed(f"samconfig.toml as saved lacks parameter {name}:\n{saved}")
        facts, failures = check_moto(endpoint, sam.functions, template_parameters(sam.built))
        print("moto after the run:")
        for fact in facts:
            print(f"  {fact}")
        if failures:
            raise Failed("; ".join(failures))
        print(f"deploy walk-through: ok ({time.monotonic() - started:.0f} s)")
    except Failed as e:
        print(f"deploy walk-through FAILED: {e}\n(sam's output: {tmp}/*/sam.log)", file=sys.stderr)
        args.keep = True
        sys.exit(1)
    finally:
        for sam in sams:
            sam.stop()
            sam.log_file.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)


if __name__ == "__main__":
    main()
