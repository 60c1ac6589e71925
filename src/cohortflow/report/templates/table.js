/* cohortflow report tables: sort by clicking a header, filter with the text box, page long tables.
   Vanilla JavaScript, no network; without JavaScript every row is simply shown. */
(function () {
  "use strict";

  function sortValue(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) { return numeric ? null : ""; }
    if (numeric) {
      var key = cell.getAttribute("data-sort");
      if (key === null) { return null; }
      var value = parseFloat(key);
      return isNaN(value) ? null : value;
    }
    return cell.textContent.trim();
  }

  function initTable(table) {
    var block = table.closest(".table-block");
    var tools = block.querySelector(".table-tools");
    var input = block.querySelector(".table-filter");
    var counter = block.querySelector(".table-count");
    var pager = block.querySelector(".pager");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var order = rows.slice();
    var pageSize = parseInt(table.getAttribute("data-page-size") || "0", 10);
    var page = 0;
    var showAll = false;
    var sortIndex = -1;
    var sortDir = 1;
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);

    rows.forEach(function (row, i) { row.setAttribute("data-index", String(i)); });

    headers.forEach(function (th, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort-btn";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      th.setAttribute("aria-sort", "none");
      button.addEventListener("click", function () { sortBy(index); });
    });

    function sortBy(index) {
      sortDir = index === sortIndex ? -sortDir : 1;
      sortIndex = index;
      var numeric = headers[index].getAttribute("data-type") === "num";
      var keyed = order.map(function (row) {
        return { row: row, key: sortValue(row, index, numeric), pos: parseInt(row.getAttribute("data-index"), 10) };
      });
      keyed.sort(function (a, b) {
        // Missing values always last; ties keep the file order (stable and deterministic).
        if (a.key === null || b.key === null) {
          if (a.key === b.key) { return a.pos - b.pos; }
          return a.key === null ? 1 : -1;
        }
        var c = numeric ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
                        : a.key.localeCompare(b.key, undefined, { numeric: true, sensitivity: "base" });
        return c !== 0 ? c * sortDir : a.pos - b.pos;
      });
      order = keyed.map(function (k) { return k.row; });
      order.forEach(function (row) { body.appendChild(row); });
      headers.forEach(function (th, i) {
        th.setAttribute("aria-sort", i === index ? (sortDir === 1 ? "ascending" : "descending") : "none");
      });
      page = 0;
      update();
    }

    function makeButton(label, disabled, action) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.disabled = disabled;
      b.addEventListener("click", action);
      return b;
    }

    function update() {
      var query = input ? input.value.trim().toLowerCase() : "";
      var visible = [];
      order.forEach(function (row) {
        var match = !query || row.textContent.toLowerCase().indexOf(query) !== -1;
        row.classList.toggle("filter-out", !match);
        if (match) { visible.push(row); }
      });
      var paged = pageSize > 0 && !showAll && visible.length > pageSize;
      var pages = paged ? Math.ceil(visible.length / pageSize) : 1;
      if (page >= pages) { page = pages - 1; }
      visible.forEach(function (row, i) {
        row.classList.toggle("page-out", paged && (i < page * pageSize || i >= (page + 1) * pageSize));
      });
      if (counter) {
        counter.textContent = (query ? visible.length + " of " + rows.length : rows.length) + (rows.length === 1 ? " row" : " rows");
      }
      pager.textContent = "";
      if (pageSize > 0 && visible.length > pageSize) {
        pager.hidden = false;
        if (showAll) {
          pager.appendChild(makeButton("Show " + pageSize + " per page", false, function () { showAll = false; page = 0; update(); }));
        } else {
          pager.appendChild(makeButton("\u2039 Previous", page === 0, function () { page -= 1; update(); }));
          var label = document.createElement("span");
          label.className = "page-label";
          label.textContent = "Page " + (page + 1) + " of " + pages;
          pager.appendChild(label);
          pager.appendChild(makeButton("Next \u203A", page >= pages - 1, function () { page += 1; update(); }));
          pager.appendChild(makeButton("Show all", false, function () { showAll = true; update(); }));
        }
      } else {
        pager.hidden = true;
      }
    }

    if (input) {
      input.addEventListener("input", function () { page = 0; update(); });
      tools.hidden = false;
    }
    table.classList.add("js-ready");
    update();
  }

  // The report places this script after all content, so every table is already parsed.
  Array.prototype.forEach.call(document.querySelectorAll("table.data"), initTable);
})();
