"""Answers to notebook 06 (exercises 6.1 and 6.2): wrong ones its checkers must reject, right ones they accept."""

import json
from collections import deque

from coursebook.answers import right, wrong
from coursebook.mutants import equivalent


@wrong("6.1", hint="below the Aggregate at the root")
def scan_of_root_only(plan: list, table: str) -> str | None:
    """Looks at the root, like top_node."""
    return plan[0]["Plan"]["Node Type"]


@wrong("6.1", hint="orders is read 3 levels down")
def scan_of_one_level(plan: list, table: str) -> str | None:
    """Looks at the root and its children, not deeper (the issue's example)."""
    root = plan[0]["Plan"]
    for node in [root, *root.get("Plans", [])]:
        if node.get("Relation Name") == table:
            return node["Node Type"]
    return None


@wrong("6.1", hint="a join has two branches: one reads orders")
def scan_of_any_relation(plan: list, table: str) -> str | None:
    """Returns the first scan it finds, whatever table it reads."""
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop(0)
        if "Relation Name" in node:
            return node["Node Type"]
        to_visit.extend(node.get("Plans", []))
    return None


@wrong("6.1", hint="a join has two branches: one reads orders")
def scan_of_first_child_only(plan: list, table: str) -> str | None:
    """Recursion that only ever follows the first child."""
    node = plan[0]["Plan"]
    while True:
        if node.get("Relation Name") == table:
            return node["Node Type"]
        if not node.get("Plans"):
            return None
        node = node["Plans"][0]


@wrong("6.1", hint="expected an index scan")
def scan_of_hard_coded(plan: list, table: str) -> str | None:
    """The answer of the first test."""
    return "Seq Scan"


@wrong("6.2", hint="orders is read 3 levels down")
def seq_scanned_tables_one_level(plan: list) -> set[str]:
    """Root and children only."""
    root = plan[0]["Plan"]
    return {node["Relation Name"] for node in [root, *root.get("Plans", [])] if node.get("Node Type") == "Seq Scan"}


@wrong("6.2", hint="report every table")
def seq_scanned_tables_first_only(plan: list) -> set[str]:
    """Stops at the first sequential scan."""
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node.get("Node Type") == "Seq Scan":
            return {node["Relation Name"]}
        to_visit.extend(node.get("Plans", []))
    return set()


@wrong("6.2", hint="only a Seq Scan counts")
def seq_scanned_tables_any_scan(plan: list) -> set[str]:
    """Every table the plan reads, by index or not."""
    found, to_visit = set(), [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if "Relation Name" in node:
            found.add(node["Relation Name"])
        to_visit.extend(node.get("Plans", []))
    return found


@wrong("6.2", hint="for a plan that reads only users")
def seq_scanned_tables_hard_coded(plan: list) -> set[str]:
    """orders is the table without an index, so orders it is."""
    return {"orders"}


@wrong("6.1", hint="no node reads 'order'")
def scan_of_name_contains(plan: list, table: str) -> str | None:
    """Matches any table whose name contains the one asked for ('orders' in 'orders_archive')."""
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if table in node.get("Relation Name", ""):
            return node["Node Type"]
        to_visit.extend(node.get("Plans", []))
    return None


@wrong("6.1", hint="no node reads 'ORDERS'")
def scan_of_ignores_case(plan: list, table: str) -> str | None:
    """Compares names case-insensitively: "Orders" and orders are two tables in PostgreSQL."""
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node.get("Relation Name", "").lower() == table.lower():
            return node["Node Type"]
        to_visit.extend(node.get("Plans", []))
    return None


@wrong("6.1", hint="the third reads events")
def scan_of_two_children(plan: list, table: str) -> str | None:
    """Treats the plan as a binary tree: a node has a left and a right child at most."""

    def walk(node):
        if node.get("Relation Name") == table:
            return node["Node Type"]
        children = node.get("Plans", [])
        left = walk(children[0]) if len(children) > 0 else None
        right = walk(children[1]) if len(children) > 1 else None
        return left or right

    return walk(plan[0]["Plan"])


@wrong("6.1", hint="below the scan of users")
def scan_of_scans_are_leaves(plan: list, table: str) -> str | None:
    """Does not look below a node that reads some table: a scan may have a plan of its own below it."""
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if "Relation Name" in node:
            if node["Relation Name"] == table:
                return node["Node Type"]
            continue
        to_visit.extend(node.get("Plans", []))
    return None


@wrong("6.2", hint="tables of earlier calls were kept")
def seq_scanned_tables_default_set(plan: list, found: set = set()) -> set[str]:  # noqa: B006
    """Recursion with a default set: it is made once, so each call adds to the tables of the calls before."""
    node = plan[0]["Plan"] if isinstance(plan, list) else plan
    if node["Node Type"] == "Seq Scan":
        found.add(node["Relation Name"])
    for child in node.get("Plans", []):
        seq_scanned_tables(child, found)  # noqa: F821
    return found


@wrong("6.2", hint="orders by a Seq Scan below it")
def seq_scanned_tables_scans_are_leaves(plan: list) -> set[str]:
    """Does not look below a scan: a scan may have a plan of its own below it."""
    found, to_visit = set(), [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node["Node Type"] == "Seq Scan":
            found.add(node["Relation Name"])
        elif "Relation Name" not in node:
            to_visit.extend(node.get("Plans", []))
    return found


@wrong("6.2", hint="only a Seq Scan counts")
def seq_scanned_tables_not_an_index_scan(plan: list) -> set[str]:
    """Counts every scan that is not an index scan, a Bitmap Heap Scan included (it reads through an index)."""
    found, to_visit = set(), [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if "Relation Name" in node and not node["Node Type"].startswith("Index"):
            found.add(node["Relation Name"])
        to_visit.extend(node.get("Plans", []))
    return found


@wrong("6.2", hint="each member reads one")
def seq_scanned_tables_two_children(plan: list) -> set[str]:
    """Treats the plan as a binary tree: a node has a left and a right child at most."""
    found = set()

    def walk(node):
        if node["Node Type"] == "Seq Scan":
            found.add(node["Relation Name"])
        for child in node.get("Plans", [])[:2]:
            walk(child)

    walk(plan[0]["Plan"])
    return found


@wrong("6.1", hint="below a WindowAgg")
def scan_of_known_node_types(plan: list, table: str) -> str | None:
    """Descends only through the node types it knows to have children (and scans): the checker's old list."""
    known = {"Aggregate", "Hash Join", "Nested Loop", "Merge Join", "Sort", "Limit", "Append", "Hash", "Gather"}

    def walk(node: dict) -> str | None:
        if node.get("Relation Name") == table:
            return node["Node Type"]
        if node["Node Type"] in known or node["Node Type"].endswith("Scan"):
            for child in node.get("Plans", []):
                found = walk(child)
                if found is not None:
                    return found
        return None

    return walk(plan[0]["Plan"])


@wrong("6.2", hint="below a WindowAgg")
def seq_scanned_tables_known_node_types(plan: list) -> set[str]:
    """Descends only through the node types it knows to have children (and scans): the checker's old list."""
    known = {"Aggregate", "Hash Join", "Nested Loop", "Merge Join", "Sort", "Limit", "Append", "Hash", "Gather"}
    found, to_visit = set(), [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node["Node Type"] == "Seq Scan":
            found.add(node["Relation Name"])
        if node["Node Type"] in known or node["Node Type"].endswith("Scan"):
            to_visit.extend(node.get("Plans", []))
    return found


@wrong("6.1", hint="below a Materialize")
def scan_of_longer_known_list(plan: list, table: str) -> str | None:
    """Descends only through a longer list of node types it knows to have children (WindowAgg and LockRows too)."""
    known = {"Aggregate", "Nested Loop", "Hash Join", "Sort", "Limit", "Append", "Hash", "WindowAgg", "LockRows"}
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop(0)
        if node.get("Relation Name") == table:
            return node["Node Type"]
        if node["Node Type"] in known or node["Node Type"].endswith("Scan"):
            to_visit += node.get("Plans", [])
    return None


@wrong("6.2", hint="below a Materialize")
def seq_scanned_tables_longer_known_list(plan: list) -> set[str]:
    """Descends only through a longer list of node types it knows to have children (WindowAgg and LockRows too)."""
    known = {"Aggregate", "Nested Loop", "Hash Join", "Sort", "Limit", "Append", "Hash", "WindowAgg", "LockRows"}

    def walk(node: dict) -> set[str]:
        here = {node["Relation Name"]} if node["Node Type"] == "Seq Scan" else set()
        if node["Node Type"] in known or node["Node Type"].endswith("Scan"):
            for child in node.get("Plans", []):
                here |= walk(child)
        return here

    return walk(plan[0]["Plan"])


@wrong("6.1", hint="EXPLAIN's JSON escapes the name")
def scan_of_searches_the_json_text(plan: list, table: str) -> str | None:
    """Searches the plan's JSON text for the table's name as typed: a name with a quote is written escaped there."""
    text = json.dumps(plan, ensure_ascii=False)
    at = text.find(f'"Relation Name": "{table}"')
    if at == -1:
        return None
    start = text.rfind('"Node Type": "', 0, at) + len('"Node Type": "')
    return text[start : text.index('"', start)]


@wrong("6.1", hint="some of them 18 levels down")
def scan_of_twelve_levels_at_most(plan: list, table: str) -> str | None:
    """A recursive walk that stops twelve levels down, "so a malformed plan cannot recurse for ever"."""

    def walk(node: dict, depth: int) -> str | None:
        if node.get("Relation Name") == table:
            return node["Node Type"]
        if depth == 12:
            return None
        found = (walk(child, depth + 1) for child in node.get("Plans", []))
        return next((kind for kind in found if kind is not None), None)

    return walk(plan[0]["Plan"], 0)


@wrong("6.1", hint="users is called orders here")
def scan_of_or_by_alias(plan: list, table: str) -> str | None:
    """When no node's Relation Name is the table, takes a node whose Alias is ("the query may call it that")."""
    nodes, to_visit = [], [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        nodes.append(node)
        to_visit.extend(node.get("Plans", []))
    for key in ("Relation Name", "Alias"):
        for node in nodes:
            if node.get(key) == table:
                return node["Node Type"]
    return None


@wrong("6.2", hint="orders is read in a SubPlan")
def seq_scanned_tables_not_in_subplans(plan: list) -> set[str]:
    """Leaves out SubPlans ("a per-row subquery is not how the query reads a table")."""
    found, to_visit = set(), [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node["Node Type"] == "Seq Scan":
            found.add(node["Relation Name"])
        to_visit.extend(child for child in node.get("Plans", []) if child.get("Parent Relationship") != "SubPlan")
    return found


@wrong("6.2", hint="some of them read 18 levels down")
def seq_scanned_tables_twelve_levels_at_most(plan: list) -> set[str]:
    """Walks twelve levels down at most, "to be safe"."""
    found, level = set(), [plan[0]["Plan"]]
    for _ in range(13):
        found |= {node["Relation Name"] for node in level if node["Node Type"] == "Seq Scan"}
        level = [child for node in level for child in node.get("Plans", [])]
    return found


# --- right answers, written differently from the model --------------------------------------------


# --- near-misses of our own: a walk that picks which children to follow ------------------------------------


@wrong("6.1", hint="below the scan of users")
def scan_of_skips_initplans(plan: list, table: str) -> str | None:
    """Leaves out children whose Parent Relationship is InitPlan ('computed once before the query, not a read of
    it'): the scan of orders in an InitPlan is missed."""
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node.get("Relation Name") == table:
            return node["Node Type"]
        to_visit += [child for child in node.get("Plans", []) if child.get("Parent Relationship") != "InitPlan"]
    return None


@wrong("6.1", hint="an InitPlan")
def scan_of_join_sides_only(plan: list, table: str) -> str | None:
    """Follows only the Outer and Inner sides ('a plan is a binary tree'): the members of an Append, SubPlans and
    InitPlans are never looked at."""
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node.get("Relation Name") == table:
            return node["Node Type"]
        to_visit += [c for c in node.get("Plans", []) if c.get("Parent Relationship", "Outer") in ("Outer", "Inner")]
    return None


@wrong("6.2", hint="each member reads one")
def seq_scanned_tables_first_member_only(plan: list) -> set[str]:
    """Of an Append's members only the first ('the others are the same query on partitions'): a UNION ALL of three
    tables reports one."""
    found, to_visit = set(), [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node["Node Type"] == "Seq Scan":
            found.add(node["Relation Name"])
        children = node.get("Plans", [])
        to_visit += children[:1] if node["Node Type"] == "Append" else children
    return found


@wrong("6.2", hint="orders by a Seq Scan below it")
def seq_scanned_tables_skips_initplans(plan: list) -> set[str]:
    """Leaves out InitPlan children ('run once, cheap'): a Seq Scan of orders in an InitPlan is a Seq Scan all
    the same."""
    found, to_visit = set(), [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node["Node Type"] == "Seq Scan":
            found.add(node["Relation Name"])
        to_visit += [child for child in node.get("Plans", []) if child.get("Parent Relationship") != "InitPlan"]
    return found


@right("6.1")
def scan_of_recursive(plan: list, table: str) -> str | None:
    """A recursive walk that returns the first match found below a node."""

    def walk(node: dict) -> str | None:
        if node.get("Relation Name") == table:
            return node["Node Type"]
        for child in node.get("Plans", []):
            found = walk(child)
            if found is not None:
                return found
        return None

    return walk(plan[0]["Plan"])


@right("6.1")
def scan_of_generator(plan: list, table: str) -> str | None:
    """Every node from a generator, then next() with a default."""

    def nodes(node: dict):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    return next((node["Node Type"] for node in nodes(plan[0]["Plan"]) if node.get("Relation Name") == table), None)


@right("6.1")
def scan_of_breadth_first(plan: list, table: str) -> str | None:
    """Level by level, with a deque."""
    queue = deque([plan[0]["Plan"]])
    while queue:
        node = queue.popleft()
        if node.get("Relation Name") == table:
            return node["Node Type"]
        queue.extend(node.get("Plans", ()))
    return None


@right("6.2")
def seq_scanned_tables_recursive_union(plan: list) -> set[str]:
    """A recursive walk that unions the sets of the children."""

    def walk(node: dict) -> set[str]:
        here = {node["Relation Name"]} if node["Node Type"] == "Seq Scan" else set()
        return here.union(*(walk(child) for child in node.get("Plans", [])))

    return walk(plan[0]["Plan"])


@right("6.2")
def seq_scanned_tables_comprehension(plan: list) -> set[str]:
    """A generator of every node, and a set comprehension over it."""

    def nodes(node: dict):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    return {node["Relation Name"] for node in nodes(plan[0]["Plan"]) if node["Node Type"] == "Seq Scan"}


@right("6.2")
def seq_scanned_tables_accumulator(plan: list, found: set | None = None) -> set[str]:
    """Recursion with an accumulator argument that defaults to None, so each call starts a new set."""
    found = set() if found is None else found
    node = plan[0]["Plan"] if isinstance(plan, list) else plan
    if node["Node Type"] == "Seq Scan":
        found.add(node["Relation Name"])
    for child in node.get("Plans", []):
        seq_scanned_tables(child, found)  # noqa: F821
    return found


# --- mutants of the model answers that behave exactly like it --------------------------------------

equivalent(
    "6.1",
    "off-by-one: 0 -> -1 in [plan[0]['Plan']]",
    reason="EXPLAIN (FORMAT JSON) returns a list of exactly one plan, so plan[-1] is plan[0]",
)
equivalent(
    "6.2",
    "off-by-one: 0 -> -1 in (set(), [plan[0]['Plan']])",
    reason="EXPLAIN (FORMAT JSON) returns a list of exactly one plan, so plan[-1] is plan[0]",
)
