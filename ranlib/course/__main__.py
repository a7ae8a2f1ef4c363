"""``python -m ranlib.course``: the modes' budgets and estimated minutes per variant, as a Markdown table."""

from ranlib.course.estimates import modes_table

if __name__ == "__main__":
    print(modes_table())
