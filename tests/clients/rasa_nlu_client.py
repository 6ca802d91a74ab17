"""Plays a Rasa Open Source server whose endpoints.yml points `nlu: url` at
kefu: it posts what Rasa's RasaNLUHttpInterpreter posts ({"token", "text",
"message_id"} to <url>/model/parse) and checks every answer against Rasa's
published ParseResult schema (tests/fixtures/rasa/parse-result.yml) with
jsonschema. Prints a JSON list of the answers.

usage: rasa_nlu_client.py URL TOKEN SCHEMA_YML TEXT...
"""

import json
import sys
import urllib.request

import jsonschema
import yaml


def parse(url, token, text, message_id):
    endpoint = url + ("model/parse" if url.endswith("/") else "/model/parse")
    body = json.dumps({"token": token, "text": text, "message_id": message_id}).encode()
    request = urllib.request.Request(endpoint, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.status
        return json.load(response)


def main():
    url, token, schema_path, *texts = sys.argv[1:]
    with open(schema_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    # The $refs point into the document's own components, so it is the root.
    schema = dict(spec, **{"$ref": "#/components/schemas/ParseResult"})
    validator = jsonschema.Draft7Validator(schema)
    answers = []
    for n, text in enumerate(texts):
        answer = parse(url, token, text, f"sender-{n}")
        errors = [e.message for e in validator.iter_errors(answer)]
        if errors:
            raise SystemExit(f"not a ParseResult: {errors}: {answer}")
        answers.append(answer)
    json.dump(answers, sys.stdout, ensure_ascii=False)


main()
