"""The AsyncAPI 3.0 document of saga definitions (``sagas asyncapi``): valid against the official
JSON Schema, naming every event the sagas use, with the reply contract of every command; odd
names, shared event types and no definitions at all give valid documents too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from asyncapi_checks import SCHEMA_FILE, VALIDATOR, all_refs, assert_valid, resolve
from click.testing import CliRunner

from sagas import Engine, Event, SagaDefinition, cloudevents, load_definition, parse_definition
from sagas.asyncapi import asyncapi_document, asyncapi_text, render
from sagas.asyncapi.attributes import ATTRIBUTES, REQUIRED_ATTRIBUTES
from sagas.cli import cli
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [
    ROOT / "definitions" / "order_fulfillment.yaml",
    ROOT / "definitions" / "travel_booking.yaml",
]


def event_types_of(definition: SagaDefinition) -> set[str]:
    """Every event type a definition names: trigger, catalogue, commands, replies, waits."""
    found = {definition.trigger, *(definition.events or {})}
    for step in definition.steps:
        for spec in (step, step.compensation):
            if spec is None:
                continue
            if spec.command is not None:
                found |= {spec.command.type, *spec.command.success, *spec.command.failure}
            if spec.wait is not None:
                found |= {*spec.wait.event, *spec.wait.failure}
    return found


def message_of(document: dict[str, Any], event_type: str) -> dict[str, Any]:
    [found] = [m for m in document["components"]["messages"].values() if m["name"] == event_type]
    return found


def operations_of(document: dict[str, Any], event_type: str) -> list[dict[str, Any]]:
    """The operations whose channel carries ``event_type``."""
    return [
        operation
        for operation in document["operations"].values()
        if resolve(document, operation["channel"]["$ref"])["address"] == event_type
    ]


def test_the_vendored_schema_refuses_what_is_not_asyncapi_3() -> None:
    # The validator is real: it refuses a 2.6 document, a wrong action and a missing title.
    good = {"asyncapi": "3.0.0", "info": {"title": "t", "version": "1"}}
    assert not list(VALIDATOR.iter_errors(good))
    assert list(VALIDATOR.iter_errors(good | {"asyncapi": "2.6.0"}))
    assert list(VALIDATOR.iter_errors(good | {"info": {"version": "1"}}))
    bad_action = {"o": {"action": "consume", "channel": {"$ref": "#/channels/c"}}}
    assert list(VALIDATOR.iter_errors(good | {"operations": bad_action}))


def test_the_shipped_definitions_give_a_valid_document_naming_every_event_they_use() -> None:
    definitions = [load_definition(path) for path in SHIPPED]
    document = asyncapi_document(definitions)
    assert_valid(document)
    names = {message["name"] for message in document["components"]["messages"].values()}
    used = set().union(*(event_types_of(d) for d in definitions))
    assert len(used) > 20
    assert names == used
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == used
    for event_type in used:
        assert operations_of(document, event_type), f"no operation for {event_type}"


def test_commands_are_sent_and_everything_else_received() -> None:
    document = asyncapi_document([load_definition(path) for path in SHIPPED])
    actions = {
        (operation["channel"]["$ref"].rsplit("/", 1)[1], operation["action"])
        for operation in document["operations"].values()
    }
    sent = {"ReserveInventory", "ReleaseInventory", "ShipOrder", "BookFlight", "BookHotel"}
    sent |= {"CancelFlight", "CancelHotel", "SendItinerary"}
    assert {channel for channel, action in actions if action == "send"} == sent
    received = {channel for channel, action in actions if action == "receive"}
    assert {"OrderCreated", "InventoryReserved", "ShipmentFailed", "TripApproved"} <= received
    assert not received & sent


def test_each_command_says_what_a_reply_must_echo_and_its_replies_require_it() -> None:
    document = asyncapi_document([load_definition(SHIPPED[0])])
    [operation] = operations_of(document, "ReserveInventory")
    assert operation["action"] == "send"
    assert operation["x-sagas-replies"] == {
        "success": ["InventoryReserved"],
        "failure": ["InventoryReservationFailed"],
    }
    assert "`sagaid`" in operation["description"]
    assert "`causationid`" in operation["description"]
    command = message_of(document, "ReserveInventory")
    assert command["correlationId"] == {"$ref": "#/components/correlationIds/command"}
    assert resolve(document, command["correlationId"]["$ref"])["location"] == (
        "$message.header#/id"
    )
    headers = resolve(document, command["headers"]["allOf"][0]["$ref"])
    assert {"sagaid", "idempotencykey", "attempt"} <= set(headers["required"])
    reply = message_of(document, "InventoryReservationFailed")
    location = resolve(document, reply["correlationId"]["$ref"])["location"]
    assert location == "$message.header#/causationid"
    reply_headers = resolve(document, reply["headers"]["allOf"][0]["$ref"])
    assert {"sagaid", "causationid"} <= set(reply_headers["required"])
    assert reply["headers"]["allOf"][1] == {
        "properties": {"type": {"const": "InventoryReservationFailed"}}
    }
    # A trigger must not carry a saga id: its headers do not ask for one.
    trigger = message_of(document, "OrderCreated")
    trigger_headers = resolve(document, trigger["headers"]["allOf"][0]["$ref"])
    assert "sagaid" not in trigger_headers["required"]
    assert "correlationId" not in trigger


def test_the_cloudevents_attributes_are_the_headers_of_every_message() -> None:
    document = asyncapi_document([load_definition(SHIPPED[1])])
    schemas = document["components"]["schemas"]
    for name in ("CloudEventAttributes", "CommandAttributes", "ReplyAttributes"):
        properties = schemas[name]["properties"]
        assert set(properties) >= {
            "id", "source", "specversion", "type", "time", "subject", "datacontenttype",
            "sagaid", "correlationid", "causationid", "idempotencykey", "attempt",
        }  # fmt: skip
        assert {"id", "source", "specversion", "type"} <= set(schemas[name]["required"])
        assert properties["specversion"]["const"] == "1.0"
    for message in document["components"]["messages"].values():
        assert message["headers"]["allOf"][0]["$ref"].startswith("#/components/schemas/")
        assert message["contentType"] == "application/json"


def test_a_header_schema_accepts_a_real_command_and_refuses_one_without_its_saga_id() -> None:
    document = asyncapi_document([load_definition(SHIPPED[0])])
    schema = {
        "components": document["components"],
        **message_of(document, "ReserveInventory")["headers"],
    }
    headers = {
        "id": "c-1", "source": "/sagas", "specversion": "1.0", "type": "ReserveInventory",
        "sagaid": "s-1", "correlationid": "o-1", "causationid": "e-1",
        "idempotencykey": "s-1/reserve_inventory", "attempt": 1,
    }  # fmt: skip
    jsonschema.validate(headers, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in headers.items() if k != "sagaid"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(headers | {"type": "ShipOrder"}, schema)


def test_payloads_say_when_no_schema_is_declared_and_name_what_the_definitions_fix() -> None:
    document = asyncapi_document([load_definition(SHIPPED[0])])
    created = message_of(document, "OrderCreated")["payload"]
    assert created["type"] == "object"
    assert "No data schema is declared" in created["description"]
    assert "additionalProperties" not in created  # open: any JSON object
    assert "correlation key of order_fulfillment" in created["properties"]["orderId"]["description"]
    command = message_of(document, "ReserveInventory")["payload"]
    assert command["required"] == ["items", "orderId"]
    assert command["additionalProperties"] is False
    jsonschema.validate({"orderId": "o-1", "items": None}, command)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"orderId": "o-1"}, command)
    described = message_of(document, "ShipOrder")
    assert described["summary"] == "Command to the shipping service."


SHARED = """
name: {name}
trigger: Order.Created
correlation: orderId
events:
  Order.Created: {{description: "placed ({name})"}}
  inventory.v1/Reserve: {{}}
  inventory.v1/Reserved: {{}}
  inventory.v1:Reserved: {{}}
  "yes": {{}}
steps:
  - name: reserve
    pivot: true
    command:
      type: inventory.v1/Reserve
      success: [inventory.v1/Reserved, "inventory.v1:Reserved"]
  - name: approve
    wait: {{event: "yes", correlation: orderId}}
"""


def test_odd_names_and_event_types_shared_by_sagas_give_one_message_each() -> None:
    definitions = [parse_definition(SHARED.format(name=name)) for name in ("a.b-c", "a")]
    document = asyncapi_document(definitions)
    assert_valid(document)
    messages = document["components"]["messages"]
    names = sorted(message["name"] for message in messages.values())
    assert names == sorted(
        ["Order.Created", "inventory.v1/Reserve", "inventory.v1/Reserved",
         "inventory.v1:Reserved", "yes"]
    )  # fmt: skip
    # Two event types whose safe key would be the same keep two keys.
    assert len(messages) == len(set(messages)) == 5
    for key in (*messages, *document["channels"], *document["operations"]):
        assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in key), key
    # One message per event type, used by each saga's operation on the same channel.
    created = operations_of(document, "Order.Created")
    assert len(created) == 2
    assert {operation["tags"][0]["name"] for operation in created} == {"a", "a.b-c"}
    assert len({operation["channel"]["$ref"] for operation in created}) == 1
    shared = message_of(document, "Order.Created")
    assert "placed (a.b-c)" in shared["description"]
    assert "placed (a)" in shared["description"]
    assert shared["description"].count("trigger of") == 2
    # YAML keeps the odd names as strings (`yes` is not true).
    assert yaml.safe_load(render(document, "yaml")) == document


def test_operation_keys_stay_unique_when_saga_and_event_names_run_together() -> None:
    steps = "steps:\n  - {name: s, handler: h, pivot: true}\n"
    one = parse_definition(f"name: a\ntrigger: receive.x\ncorrelation: k\n{steps}")
    two = parse_definition(f"name: a.receive\ntrigger: x\ncorrelation: k\n{steps}")
    document = asyncapi_document([one, two])
    assert_valid(document)
    assert len(document["operations"]) == 2


def test_no_definitions_give_a_valid_empty_document() -> None:
    document = asyncapi_document([])
    assert_valid(document)
    assert document["channels"] == {}
    assert document["operations"] == {}
    assert document["components"]["messages"] == {}
    assert "none" in document["info"]["description"]


def test_the_same_definitions_give_the_same_document_and_a_change_a_new_version() -> None:
    order = load_definition(SHIPPED[0])
    assert asyncapi_text([order]) == asyncapi_text([order, order])
    travel = load_definition(SHIPPED[1])
    one, two = asyncapi_document([order]), asyncapi_document([order, travel])
    assert one["info"]["version"] != two["info"]["version"]
    assert asyncapi_document([travel, order]) == two


def test_two_different_definitions_of_one_name_and_version_both_count() -> None:
    order = load_definition(SHIPPED[0])
    other = order.model_copy(update={"trigger": "OrderPlaced"})
    document = asyncapi_document([order, other])
    assert_valid(document)
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert {"OrderCreated", "OrderPlaced"} <= names


def test_every_version_of_a_saga_counts() -> None:
    order = load_definition(SHIPPED[0])
    newer = order.model_copy(update={"version": 2, "trigger": "OrderPlaced"})
    document = asyncapi_document([order, newer])
    assert_valid(document)
    assert {"OrderCreated", "OrderPlaced"} <= {
        m["name"] for m in document["components"]["messages"].values()
    }


def test_hostile_descriptions_survive_json_and_yaml() -> None:
    text = (
        "name: o\ntrigger: T\ncorrelation: k\nevents:\n"
        '  T: {description: "line\\nbreak \\u2028 ` *bold* </script> \\ttab \\x7f"}\n'
        "steps:\n  - {name: s, handler: h, pivot: true}\n"
    )
    document = asyncapi_document([parse_definition(text)])
    assert_valid(document)
    assert json.loads(render(document, "json")) == document
    assert yaml.safe_load(render(document, "yaml")) == document
    assert "</script>" in message_of(document, "T")["summary"]


# -- the command line ---------------------------------------------------------------------


def test_cli_writes_the_document_of_the_given_definitions(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["asyncapi", "--definitions", str(ROOT / "definitions")])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert_valid(document)
    assert document == asyncapi_document([load_definition(path) for path in SHIPPED])
    out = tmp_path / "contract.yaml"
    args = ["asyncapi", "--definitions", str(SHIPPED[0]), "--format", "yaml", "-o", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text(encoding="utf-8")) == asyncapi_document(
        [load_definition(SHIPPED[0])]
    )


def test_cli_reads_the_registered_definitions_from_the_database(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'sagas.db'}"
    store = SQLStore(database)
    try:
        for path in SHIPPED:
            store.register_definition(load_definition(path), ManualClock().now())
        registered = store.definitions()
    finally:
        store.close()
    result = CliRunner().invoke(cli, ["asyncapi", "--db", database])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == asyncapi_document(registered)


def test_cli_with_an_empty_database_writes_a_valid_empty_document(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'empty.db'}"
    SQLStore(database).close()
    result = CliRunner().invoke(cli, ["asyncapi", "--db", database, "--format", "yaml"])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.output)
    assert_valid(document)
    assert document["operations"] == {}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--definitions", "no/such/folder"], "no/such/folder: no such file or folder"),
        (["--db", "sqlite:///no/such/file.db"], "no database at no/such/file.db"),
        (["--format", "xml", "--definitions", "definitions"], "'xml' is not one of"),
    ],
)
def test_cli_refuses_what_it_cannot_read_with_a_clear_error(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(cli, ["asyncapi", *args])
    assert result.exit_code != 0
    assert expected in result.output
    assert "Traceback" not in result.output


def test_cli_names_every_problem_of_an_invalid_definition(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: o\ntrigger: sagas.x y\ncorrelation: k\nsteps: []\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["asyncapi", "--definitions", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2: trigger:" in result.output
    assert f"{bad}:4: steps:" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_says_when_the_output_cannot_be_written(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "contract.json"
    result = CliRunner().invoke(
        cli, ["asyncapi", "--definitions", str(SHIPPED[0]), "--output", str(target)]
    )
    assert result.exit_code != 0
    assert "contract.json" in result.output
    assert "Traceback" not in result.output
    assert not target.exists()


def test_the_vendored_schema_refers_only_to_what_it_embeds() -> None:
    # Every absolute $ref is a definition embedded by its $id (draft-07 itself included):
    # validation never reaches for the network.
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    embedded = {item["$id"] for item in schema["definitions"].values()}
    absolute = {ref.split("#")[0] for ref in all_refs(schema) if ref.startswith("http")}
    assert len(absolute) > 50
    assert "http://json-schema.org/draft-07/schema" in embedded
    assert absolute <= embedded


# -- the document against the engine's own CloudEvents ------------------------------------


def test_the_attributes_are_those_of_the_cloudevents_mapping() -> None:
    assert set(cloudevents.REQUIRED) == set(REQUIRED_ATTRIBUTES)
    for extension, key in cloudevents.EXTENSIONS.items():
        assert f"(`{key}`" in ATTRIBUTES[extension]["description"], extension


def test_the_engines_commands_and_bus_replies_fit_their_messages(tmp_path: Path) -> None:
    # A real order saga: the command the engine publishes and the replies `bus.reply` makes,
    # as CloudEvents, fit the headers and payload their messages declare.
    document = asyncapi_document([load_definition(SHIPPED[0])])
    engine = Engine(SQLStore(f"sqlite:///{tmp_path / 'o.db'}"), clock=ManualClock())
    seen: list[Event] = []
    try:
        engine.register(load_definition(SHIPPED[0]))

        def reserve(command: Event) -> None:
            seen.extend([command, engine.bus.reply(command, "InventoryReservationFailed")])

        engine.bus.subscribe("ReserveInventory", reserve)
        engine.bus.publish("OrderCreated", {"orderId": "o-1", "items": ["book"], "address": "x"})
        engine.run_until_idle()
        [instance] = engine.store.list_instances()
        assert instance.state.status.value == "compensated"
    finally:
        engine.close()
    assert [event.event_type for event in seen] == [
        "ReserveInventory",
        "InventoryReservationFailed",
    ]
    for event in seen:
        wire = json.loads(cloudevents.to_http(event, source="/tests").body)
        data = wire.pop("data")
        message = message_of(document, event.event_type)
        jsonschema.validate(wire, {"components": document["components"], **message["headers"]})
        jsonschema.validate(data, message["payload"])
    command, reply = seen
    assert reply.causation_id == command.event_id
    assert reply.saga_id == command.saga_id
