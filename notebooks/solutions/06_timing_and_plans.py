# Solutions for notebooks/06_timing_and_plans.ipynb. Each section replaces the exercise cell with the same number.

# %% Exercise 6.1
def scan_of(plan: list, table: str) -> str | None:
    to_visit = [plan[0]["Plan"]]
    while to_visit:
        node = to_visit.pop()
        if node.get("Relation Name") == table:
            return node["Node Type"]
        to_visit.extend(node.get("Plans", []))
    return None
