/* Draws a run's step graph with Cytoscape.js and the dagre layout (both vendored).
 * The data comes from the page (<script type="application/json" id="graph-data">, written by
 * the server with HTML-safe JSON); labels are drawn on a canvas, never parsed as HTML. */
(function () {
  "use strict";
  var holder = document.getElementById("graph");
  var source = document.getElementById("graph-data");
  if (!holder || !source || typeof cytoscape === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var colors = {
    completed: "#1a7f37", cached: "#0969da", failed: "#cf222e", running: "#bc4c00",
    retrying: "#bc4c00", stopped: "#8250df", cancelled: "#8250df", skipped: "#8c959f"
  };
  var elements = [];
  data.nodes.forEach(function (node) {
    var label = node.id + "\n" + (node.cached ? "cache hit" : node.status);
    if (node.duration !== "-") {
      label += " \u00b7 " + node.duration;
    }
    elements.push({
      group: "nodes",
      data: { id: node.id, label: label, href: node.href, color: colors[node.status] || "#8c959f" },
      classes: node.cached ? "cached" : ""
    });
  });
  data.edges.forEach(function (edge, i) {
    elements.push({
      group: "edges",
      data: { id: "e" + i, source: edge.source, target: edge.target, label: edge.label },
      classes: edge.label === "after" ? "order" : ""
    });
  });
  var hasDagre = typeof cytoscapeDagre !== "undefined";
  if (hasDagre && !cytoscape.prototype.__zbDagre) {
    cytoscape.use(cytoscapeDagre);
    cytoscape.prototype.__zbDagre = true;
  }
  var cy = cytoscape({
    container: holder,
    elements: elements,
    autoungrabify: true,
    boxSelectionEnabled: false,
    style: [
      { selector: "node", style: {
        "shape": "round-rectangle", "width": 170, "height": 48,
        "background-color": "#ffffff", "border-width": 3, "border-color": "data(color)",
        "label": "data(label)", "text-wrap": "wrap", "text-valign": "center",
        "text-halign": "center", "font-size": 12, "color": "#1f2328"
      } },
      { selector: "node.cached", style: { "border-style": "dashed", "background-color": "#ddf4ff" } },
      { selector: "edge", style: {
        "curve-style": "bezier", "width": 1.5, "line-color": "#8c959f",
        "target-arrow-shape": "triangle", "target-arrow-color": "#8c959f",
        "label": "data(label)", "font-size": 9, "color": "#57606a",
        "text-background-color": "#fcfcfd", "text-background-opacity": 1,
        "text-rotation": "autorotate"
      } },
      { selector: "edge.order", style: { "line-style": "dashed" } }
    ],
    layout: hasDagre
      ? { name: "dagre", rankDir: "LR", nodeSep: 24, rankSep: 90, padding: 20 }
      : { name: "breadthfirst", directed: true, padding: 20 }
  });
  cy.on("tap", "node", function (evt) {
    var href = evt.target.data("href");
    if (href) {
      window.location.href = href;
    }
  });
  cy.on("mouseover", "node", function () { holder.style.cursor = "pointer"; });
  cy.on("mouseout", "node", function () { holder.style.cursor = ""; });
  window.zbGraph = cy;
  holder.setAttribute("data-nodes", String(cy.nodes().length));
  holder.setAttribute("data-edges", String(cy.edges().length));
  holder.setAttribute("data-layout", hasDagre ? "dagre" : "breadthfirst");
})();
