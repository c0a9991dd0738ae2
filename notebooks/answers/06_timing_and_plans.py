"""Answers to notebook 06 (exercises 6.1 and 6.2): wrong ones its checkers must reject, right ones they accept."""

from coursebook.answers import wrong


@wrong("6.1", hint="the root")
def scan_of_root_only(plan: list, table: str) -> str | None:
    """Looks at the root, like top_node."""
    return plan[0]["Plan"]["Node Type"]


@wrong("6.1", hint="levels below the root")
def scan_of_one_level(plan: list, table: str) -> str | None:
    """Looks at the root and its children, not deeper (the issue's example)."""
    root = plan[0]["Plan"]
    for node in [root, *root.get("Plans", [])]:
        if node.get("Relation Name") == table:
            return node["Node Type"]
    return None


@wrong("6.1", hint="which table")
def scan_of_any_relation(plan: list, table: str) -> str | None:
    """Returns the first scan it finds, whatever table it reads."""
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop(0)
        if "Relation Name" in node:
            return node["Node Type"]
        to_visit.extend(node.get("Plans", []))
    return None


@wrong("6.1", hint="every branch")
def scan_of_first_child_only(plan: list, table: str) -> str | None:
    """Recursion that only ever follows the first child."""
    node = plan[0]["Plan"]
    while True:
        if node.get("Relation Name") == table:
            return node["Node Type"]
        if not node.get("Plans"):
            return None
        node = node["Plans"][0]


@wrong("6.1", hint="after CREATE INDEX")
def scan_of_hard_coded(plan: list, table: str) -> str | None:
    """The answer of the first test."""
    return "Seq Scan"


@wrong("6.2", hint="levels below the root")
def seq_scanned_tables_one_level(plan: list) -> set[str]:
    """Root and children only."""
    root = plan[0]["Plan"]
    return {node["Relation Name"] for node in [root, *root.get("Plans", [])] if node.get("Node Type") == "Seq Scan"}


@wrong("6.2", hint="every table")
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


@wrong("6.2", hint="only a Seq Scan counts")
def seq_scanned_tables_hard_coded(plan: list) -> set[str]:
    """orders is the table without an index, so orders it is."""
    return {"orders"}
