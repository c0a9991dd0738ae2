"""The notebook run of ``course.py test``: each notebook once, as a learner runs it, every check in its one kernel.

    workbench.py  what the run's notebooks share: a folder of learner copies, the run's logged server
    book.py       Book: nbval's notebook collector, its kernel in the learner copies; run a cell, read outputs
    items.py      CourseBook and the items it adds after nbval's cells: Run All again, each cell twice, budget
    checks.py     what Run All again proves, one small class each (add a check: subclass Check, list it)

The hooks that tie them into pytest are in coursebook/pytest_plugin.py, and only there.
"""
