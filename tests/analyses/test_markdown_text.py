"""Data in a Markdown report reads as written: a value is never taken for HTML or table syntax."""

from __future__ import annotations

import mistune
import pandas as pd
from bs4 import BeautifulSoup
from hypothesis import example, given, settings, strategies as st

from rca_toolkit.analyses.markdown import md_items, md_table, md_text

# HTML, entity and table syntax, and the whitespace that would end a row (Markdown's own emphasis marks aside)
DATA = st.text(alphabet=st.sampled_from(list("ab <>/=\"'&;#|\n\t")), max_size=40)
RENDER = mistune.create_markdown(escape=False, plugins=["table"])  # raw HTML allowed, as CommonMark renderers do


@settings(max_examples=300, deadline=None)
@given(DATA, DATA)
def test_a_cell_reads_as_written_in_one_row_of_one_table(header: str, value: str):
    page = BeautifulSoup(RENDER(md_table(pd.DataFrame({header: [value]}))), "html.parser")
    (cell,) = page.find_all("td")
    assert cell.get_text() == " ".join(value.split()) and cell.find() is None  # no element made of the data
    assert page.find("th").get_text() == " ".join(header.split()) and len(page.find_all("tr")) == 2


@settings(max_examples=300, deadline=None)
@example("    ;")  # four spaces lead an indented code block
@given(DATA.filter(lambda t: t.strip()))
def test_an_item_of_a_list_reads_as_written(value: str):
    page = BeautifulSoup(RENDER("\n".join(md_items([value, "next"]))), "html.parser")
    assert [li.get_text() for li in page.find_all("li")] == [" ".join(value.split()), "next"]
    assert page.find("li").find() is None


def test_the_escapes_are_few_so_the_file_reads_well_too():
    assert md_text("R&D <b>x</b> &lt; 5") == "R&D &lt;b>x&lt;/b> &amp;lt; 5" and md_text("> 2 h") == "\\> 2 h"
