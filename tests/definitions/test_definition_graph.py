"""The step graph (sequence, fork and join) and its pictures in Mermaid and DOT."""

import re
from pathlib import Path

import networkx as nx
import pytest

from sagas import SagaDefinition, load_definition, parse_definition, step_graph, to_dot, to_mermaid

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def order() -> SagaDefinition:
    return load_definition(ROOT / "definitions" / "order_fulfillment.yaml")


@pytest.fixture
def travel() -> SagaDefinition:
    return load_definition(ROOT / "definitions" / "travel_booking.yaml")


def test_steps_without_after_run_in_written_order(order: SagaDefinition) -> None:
    graph = step_graph(order)
    assert list(graph.nodes) == ["reserve_inventory", "take_payment", "ship"]
    assert set(graph.edges) == {("reserve_inventory", "take_payment"), ("take_payment", "ship")}


def test_each_node_carries_its_step(order: SagaDefinition) -> None:
    graph = step_graph(order)
    assert all(graph.nodes[step.name]["step"] is step for step in order.steps)


def test_after_forks_at_the_start_and_joins_all_its_steps(travel: SagaDefinition) -> None:
    graph = step_graph(travel)
    assert set(graph.edges) == {
        ("book_flight", "manager_approval"),
        ("book_hotel", "manager_approval"),
        ("book_car", "manager_approval"),
        ("manager_approval", "charge_customer"),
        ("charge_customer", "send_itinerary"),
    }
    assert [name for name, degree in graph.in_degree if degree == 0] == [
        "book_flight",
        "book_hotel",
        "book_car",
    ]
    assert nx.is_directed_acyclic_graph(graph)


def test_dependencies_follow_after_or_else_the_step_written_before(travel: SagaDefinition) -> None:
    dependencies = {step.name: travel.dependencies(step) for step in travel.steps}
    assert dependencies == {
        "book_flight": (),
        "book_hotel": (),
        "book_car": (),
        "manager_approval": ("book_flight", "book_hotel", "book_car"),
        "charge_customer": ("manager_approval",),
        "send_itinerary": ("charge_customer",),
    }


def test_the_pivot_lies_on_every_path_of_the_shipped_sagas(
    order: SagaDefinition, travel: SagaDefinition
) -> None:
    for definition in (order, travel):
        graph = step_graph(definition)
        [pivot] = [step.name for step in definition.steps if step.pivot]
        related = nx.ancestors(graph, pivot) | nx.descendants(graph, pivot) | {pivot}
        assert related == set(graph)


def test_mermaid_shows_every_step_its_compensation_and_the_edges(travel: SagaDefinition) -> None:
    mermaid = to_mermaid(travel)
    lines = mermaid.splitlines()
    assert lines[:3] == ["flowchart TD", '  start(["TripRequested"])', "  done([completed])"]
    nodes = re.findall(r'^  (s\d+)(?:\[|\{\{)"(\w+)<br/>', mermaid, re.M)
    assert nodes == [(f"s{index}", step.name) for index, step in enumerate(travel.steps)]
    compensation_edges = [line for line in lines if "-. compensation .->" in line]
    assert compensation_edges == [
        "  s0 -. compensation .-> s0_undo",
        "  s1 -. compensation .-> s1_undo",
        "  s2 -. compensation .-> s2_undo",
    ]
    assert '  s2_undo["undo book_car<br/>handler cancel_car"]' in lines
    assert [line for line in lines if " --> " in line] == [
        "  start --> s0",
        "  start --> s1",
        "  start --> s2",
        "  s0 --> s3",
        "  s1 --> s3",
        "  s2 --> s3",
        "  s3 --> s4",
        "  s4 --> s5",
        "  s5 --> done",
    ]


def test_mermaid_draws_the_pivot_as_a_hexagon(order: SagaDefinition) -> None:
    assert '  s2{{"ship<br/>command ShipOrder"}}' in to_mermaid(order).splitlines()


def test_dot_shows_every_step_and_every_compensation_edge(travel: SagaDefinition) -> None:
    dot = to_dot(travel)
    assert dot.startswith('digraph "travel_booking" {\n')
    assert dot.endswith("}\n")
    for index, step in enumerate(travel.steps):
        assert f'  s{index} [label="{step.name}\\n' in dot
    compensated = {step.name for step in travel.steps if step.compensation is not None}
    assert compensated == {"book_flight", "book_hotel", "book_car"}
    undo_edges = re.findall(r"^  (s\d+) -> (s\d+)_undo \[style=dashed, color=red\];$", dot, re.M)
    assert undo_edges == [("s0", "s0"), ("s1", "s1"), ("s2", "s2")]
    assert '  s4 [label="charge_customer\\nhandler charge_customer", shape=hexagon];' in dot


def test_dot_edges_are_the_step_graph_plus_start_and_end(travel: SagaDefinition) -> None:
    ids = {f"s{index}": step.name for index, step in enumerate(travel.steps)}
    ids |= {"start": "__start", "done": "__end"}
    found = re.findall(r"^  (\w+) -> (\w+);$", to_dot(travel), re.M)
    edges = {(ids[source], ids[target]) for source, target in found}
    start = {("__start", name) for name in ("book_flight", "book_hotel", "book_car")}
    assert edges == set(step_graph(travel).edges) | start | {("send_itinerary", "__end")}


def test_a_delay_and_a_wait_are_labelled_with_their_duration_and_events() -> None:
    definition = parse_definition(
        "name: s\ntrigger: T\ncorrelation: id\nsteps:\n"
        "  - name: cool_off\n    delay: PT90M\n"
        "  - name: approval\n    wait: {event: [Approved, Overruled]}\n"
    )
    mermaid = to_mermaid(definition)
    assert '  s0["cool_off<br/>delay 1h30m"]' in mermaid
    assert '  s1["approval<br/>wait Approved | Overruled"]' in mermaid
    assert '  s0 [label="cool_off\\ndelay 1h30m"];' in to_dot(definition)
