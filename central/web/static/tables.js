// Sorting and search for every table marked `sortable` (the server renders them complete; this
// only reorders and hides rows in the page). Headers become buttons with aria-sort; a table
// with data-search gets a search box above it. No inline script: the CSP allows only this file.
"use strict";
(function () {
  function cellValue(row, index) {
    var cell = row.cells[index];
    var text = cell ? cell.textContent.trim() : "";
    var number = parseFloat(text.replace(",", "."));
    return { text: text.toLowerCase(), number: /^-?[0-9.,]+\s*%?$/.test(text) ? number : null };
  }

  function sortBy(table, index, header) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r.cells.length > 1; });
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index);
      var order = (x.number !== null && y.number !== null) ? x.number - y.number : x.text.localeCompare(y.text);
      return ascending ? order : -order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function addSearch(table) {
    var label = document.createElement("label");
    label.className = "table-search";
    label.textContent = "Search ";
    var input = document.createElement("input");
    input.type = "search";
    input.placeholder = table.getAttribute("data-search");
    input.setAttribute("aria-controls", table.id);
    input.id = table.id + "-search";
    label.appendChild(input);
    var holder = table.parentElement.classList.contains("scroll") ? table.parentElement : table;
    holder.parentElement.insertBefore(label, holder);
    input.addEventListener("input", function () {
      var needle = input.value.trim().toLowerCase();
      var rows = table.tBodies[0] ? table.tBodies[0].rows : [];
      for (var i = 0; i < rows.length; i++) {
        rows[i].hidden = needle !== "" && rows[i].textContent.toLowerCase().indexOf(needle) < 0;
      }
    });
  }

  var tables = document.querySelectorAll("table.sortable");
  for (var t = 0; t < tables.length; t++) {
    (function (table) {
      if (!table.tHead) { return; }
      var heads = table.tHead.rows[0].cells;
      for (var i = 0; i < heads.length; i++) {
        (function (header, index) {
          var button = document.createElement("button");
          button.type = "button";
          button.className = "sort";
          button.textContent = header.textContent;
          button.title = "Sort by " + header.textContent;
          header.textContent = "";
          header.appendChild(button);
          button.addEventListener("click", function () { sortBy(table, index, header); });
        })(heads[i], i);
      }
      if (table.hasAttribute("data-search")) { addSearch(table); }
    })(tables[t]);
  }
})();
