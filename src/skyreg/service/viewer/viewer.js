// skyreg sky viewer: an all-sky coverage map and a field view of CCDs, patches and tracts,
// drawn with d3-geo on SVG from the service's /api/v1/sky endpoints. No build step: plain
// JavaScript over the vendored d3 and d3-geo-projection.
"use strict";

const svg = d3.select("#map");
const state = { view: null, field: null, coverage: null, band: "" };

// -- small helpers ------------------------------------------------------------------------------

async function api(path, params = {}) {
  const url = new URL("api/v1/" + path, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    for (const v of [].concat(value)) url.searchParams.append(name, v);
  }
  const response = await fetch(url);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function setStatus(text, error = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

function busy(value) { document.body.dataset.state = value ? "loading" : "ready"; }

function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// A footprint as GeoJSON (longitude = RA). d3 takes a ring's inside to be on its right, so
// the registry's counter-clockwise rings are reversed; a ring that then encloses more than a
// hemisphere is turned back (d3 would otherwise fill the rest of the sky).
function polygon(ra, dec) {
  const ring = ra.map((r, i) => [r, dec[i]]).reverse();
  ring.push(ring[0]);
  const feature = { type: "Polygon", coordinates: [ring] };
  if (d3.geoArea(feature) > 2 * Math.PI) ring.reverse();
  return feature;
}

function viewport() {
  const box = svg.node().getBoundingClientRect();
  return [Math.max(box.width, 200), Math.max(box.height, 200)];
}

function formatAngle(value) { return Number(value).toFixed(5); }

function resetMap() {
  svg.selectAll("*").remove();
  svg.on(".zoom", null);
  document.getElementById("legend").replaceChildren();
  const layer = svg.append("g").attr("class", "layer");
  const zoom = d3.zoom().scaleExtent([0.5, 60]).on("zoom", (event) => {
    layer.attr("transform", event.transform);
  });
  svg.call(zoom);
  return { layer, zoom };
}

function legend(entries) {
  const box = document.getElementById("legend");
  box.replaceChildren();
  for (const [label, color] of entries) {
    const swatch = element("span");
    swatch.style.background = color;
    box.append(swatch, document.createTextNode(label));
  }
}

function setBands(bands) {
  const select = document.getElementById("band");
  const chosen = state.band;
  select.replaceChildren(element("option", "all", { value: "" }));
  for (const band of bands) select.append(element("option", band, { value: band }));
  select.value = bands.includes(chosen) ? chosen : "";
  state.band = select.value;
}

// -- all-sky overview ---------------------------------------------------------------------------

async function showOverview() {
  busy(true);
  setStatus("loading the coverage map…");
  try {
    state.coverage = state.coverage || await api("sky/coverage");
  } catch (error) {
    setStatus(error.message, true);
    busy(false);
    return;
  }
  state.view = "overview";
  state.field = null;
  history.replaceState(null, "", "#");
  setBands(state.coverage.bands);
  drawOverview();
  busy(false);
}

function drawOverview() {
  const coverage = state.coverage;
  const { layer, zoom } = resetMap();
  const [width, height] = viewport();
  // Hammer equal-area, RA increasing to the left with RA 180° in the middle.
  const projection = d3.geoHammer().rotate([-180, 0]).reflectX(true)
    .fitExtent([[12, 12], [width - 12, height - 12]], { type: "Sphere" });
  const path = d3.geoPath(projection);
  layer.append("path").attr("class", "sphere").attr("d", path({ type: "Sphere" }));
  layer.append("path").attr("class", "graticule").attr("d", path(d3.geoGraticule10()));
  const counts = coverage.counts[state.band || "all"];
  const top = Math.max(1, d3.max(counts) || 1);
  const color = d3.scaleSequential(d3.interpolateViridis).domain([0, top]);
  const cells = coverage.cells.pixel.map((pixel, i) => ({
    pixel, count: counts[i], shape: polygon(coverage.cells.ra[i], coverage.cells.dec[i]),
  })).filter((cell) => cell.count > 0);
  layer.append("g").selectAll("path").data(cells).join("path")
    .attr("class", "cell")
    .attr("data-pixel", (cell) => cell.pixel)
    .attr("d", (cell) => path(cell.shape))
    .attr("fill", (cell) => color(cell.count))
    .on("click", (event, cell) => {
      const [ra, dec] = d3.geoCentroid(cell.shape);
      const radius = Math.max(0.3, 2 * d3.geoDistance([ra, dec],
        cell.shape.coordinates[0][0]) * 180 / Math.PI);
      showTarget(`${((ra % 360) + 360) % 360} ${dec} ${radius.toFixed(3)}`);
    })
    .append("title").text((cell) => `${cell.count} visits`);
  for (let ra = 0; ra < 360; ra += 30) {
    const [x, y] = projection([ra, 0]);
    layer.append("text").attr("class", "label").attr("x", x).attr("y", y - 3)
      .attr("text-anchor", "middle").text(`${ra}°`);
  }
  // Start zoomed on the survey (scroll or pinch out for the whole sky).
  if (cells.length) {
    const [[x0, y0], [x1, y1]] = path.bounds({ type: "FeatureCollection",
      features: cells.map((cell) => ({ type: "Feature", geometry: cell.shape })) });
    const k = Math.max(1, Math.min(8, 0.6 * width / (x1 - x0 + 1), 0.6 * height / (y1 - y0 + 1)));
    svg.call(zoom.transform, d3.zoomIdentity.translate(width / 2, height / 2).scale(k)
      .translate(-(x0 + x1) / 2, -(y0 + y1) / 2));
  }
  legend([[`0 visits`, color(0)], [`${top} visits`, color(top)]]);
  setStatus(`${cells.length} cells with visits (${coverage.scheme} level ${coverage.level}, `
    + `${state.band || "all bands"}). Click a cell to look closer.`);
}

// -- field view ---------------------------------------------------------------------------------

function fieldParams(target) {
  if (target.kind === "cone") return { cone: `${target.ra},${target.dec},${target.radius}` };
  if (target.kind === "tract") return { tract: `${target.skymap},${target.tract}` };
  return { patch: `${target.skymap},${target.tract},${target.patch}` };
}

async function showTarget(text) {
  document.getElementById("target").value = text;
  busy(true);
  setStatus(`looking up ${text}…`);
  try {
    const target = await api("sky/resolve", { q: text });
    state.field = await api("sky/field", fieldParams(target));
  } catch (error) {
    setStatus(error.message, true);
    busy(false);
    return;
  }
  state.view = "field";
  history.replaceState(null, "", "#q=" + encodeURIComponent(text));
  setBands(Object.keys(state.field.bands));
  drawField();
  busy(false);
}

function regionShape(region) {
  if (region.kind === "cone") {
    return d3.geoCircle().center([region.ra, region.dec]).radius(region.radius).precision(1)();
  }
  return polygon(region.ra, region.dec);
}

function drawField() {
  const data = state.field;
  const { layer } = resetMap();
  const [width, height] = viewport();
  const centre = data.center;
  const region = regionShape(data.region);
  // Gnomonic (tangent plane) on the region's centre, RA increasing to the left.
  const projection = d3.geoGnomonic().rotate([-centre.ra, -centre.dec]).reflectX(true)
    .clipAngle(Math.min(80, 3 * centre.radius + 1))
    .fitExtent([[30, 30], [width - 30, height - 30]], region);
  const path = d3.geoPath(projection);
  const step = niceStep(centre.radius / 2);
  layer.append("path").attr("class", "graticule").attr("d", path(localGraticule(centre, step)));

  const tracts = data.tracts;
  layer.append("g").selectAll("path").data(tracts.tract.map((t, i) => i)).join("path")
    .attr("class", "tract")
    .attr("data-key", (i) => `${tracts.skymap[i]}/${tracts.tract[i]}`)
    .attr("d", (i) => path(polygon(tracts.ra[i], tracts.dec[i])))
    .on("click", (event, i) => select(event, "tract", [tracts.skymap[i], tracts.tract[i]]))
    .append("title").text((i) => `tract ${tracts.skymap[i]} ${tracts.tract[i]}`);

  // Patches: click targets under the CCDs, outlines (inner solid, outer dashed) above them.
  const patches = data.patches;
  const patchTargets = layer.append("g");
  const patchLines = [];
  patches.patch.forEach((p, i) => {
    const key = [patches.skymap[i], patches.tract[i], p];
    patchTargets.append("path").attr("class", "patch").attr("data-key", key.join("/"))
      .attr("d", path(polygon(patches.ra[i], patches.dec[i])))
      .on("click", (event) => select(event, "patch", key))
      .append("title").text(`patch ${key.join(" ")}`);
    patchLines.push(path(polygon(patches.inner_ra[i], patches.inner_dec[i])));
  });

  const ccds = data.ccds;
  layer.append("g").selectAll("path").data(ccds.visit.map((v, i) => i)).join("path")
    .attr("class", (i) => `ccd band-${ccds.band[i]}`)
    .attr("data-key", (i) => `${ccds.instrument[i]}/${ccds.visit[i]}/${ccds.detector[i]}`)
    .attr("data-band", (i) => ccds.band[i])
    .attr("d", (i) => path(polygon(ccds.ra[i], ccds.dec[i])))
    .attr("stroke", (i) => data.bands[ccds.band[i]])
    .attr("fill", (i) => data.bands[ccds.band[i]])
    .on("click", (event, i) => select(event, "ccd",
      [ccds.instrument[i], ccds.visit[i], ccds.detector[i]]))
    .append("title").text((i) => `${ccds.instrument[i]} ${ccds.visit[i]} ${ccds.detector[i]}`
      + ` (${ccds.band[i]})`);

  layer.append("g").selectAll("path").data(patchLines).join("path")
    .attr("class", "patch-inner").attr("d", (d) => d);
  layer.append("path").attr("class", "region").attr("d", path(region));
  applyBand();
  legend(Object.entries(data.bands));
  const shown = ccds.visit.length;
  setStatus(`${shown}${data.truncated ? ` of ${data.total.ccds}` : ""} CCDs, `
    + `${patches.patch.length} patches, ${tracts.tract.length} tracts around RA `
    + `${formatAngle(centre.ra)}, Dec ${formatAngle(centre.dec)} · grid ${step}°`
    + (data.truncated ? " · only the first CCDs are drawn: narrow the region" : ""));
}

// Grid lines around the centre only: a whole-sky graticule at a fine step has millions of
// points. Near a pole the meridians fan out, so their step grows with 1/cos(Dec).
function localGraticule(centre, step) {
  const reach = 3 * centre.radius + step;
  const lat0 = Math.max(-90, centre.dec - reach);
  const lat1 = Math.min(90, centre.dec + reach);
  const nearest = Math.min(89.9, Math.max(Math.abs(lat0), Math.abs(lat1)));
  const lonReach = lat1 >= 90 || lat0 <= -90 ? 180
    : Math.min(180, reach / Math.cos(nearest * Math.PI / 180));
  const lonStep = niceStep(Math.max(step, lonReach / 6));
  const lon0 = lonReach >= 180 ? -180 : centre.ra - lonReach;
  const lon1 = lonReach >= 180 ? 180 : centre.ra + lonReach;
  return d3.geoGraticule()
    .extent([[lon0, lat0], [lon1, lat1]])
    .stepMajor([lonStep, step]).stepMinor([lonStep, step])
    .precision(Math.max(step, lonStep) / 8)();
}

function niceStep(value) {
  const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 45,
    90];
  return steps.find((s) => s >= value) || 90;
}

function applyBand() {
  svg.selectAll(".ccd").classed("hidden", function hide() {
    return state.band !== "" && this.dataset.band !== state.band;
  });
}

// -- details ------------------------------------------------------------------------------------

async function select(event, kind, key) {
  event.stopPropagation();
  svg.selectAll(".selected").classed("selected", false);
  d3.select(event.currentTarget).classed("selected", true);
  const panel = document.getElementById("details");
  panel.replaceChildren(element("p", "loading…", { class: "hint" }));
  busy(true);
  try {
    showDetails(await api("sky/details", { [kind]: key.join(",") }));
  } catch (error) {
    panel.replaceChildren(element("p", error.message, { class: "hint" }));
  }
  busy(false);
}

function showDetails(info) {
  const panel = document.getElementById("details");
  const id = Object.values(info.data_id).join(" ");
  const title = element("h2", `${info.kind === "ccd" ? "CCD" : info.kind} ${id}`,
    { class: "data-id" });
  const fields = element("dl");
  const add = (name, value) => {
    if (value === undefined || value === null) return;
    fields.append(element("dt", name), element("dd", value));
  };
  for (const [name, value] of Object.entries(info.data_id)) add(name, value);
  add("band", info.band);
  if (info.mjd_start) add("start (MJD TAI)", info.mjd_start.toFixed(6));
  add("exposure (s)", info.exposure_time);
  add("vertices", info.ra.map((r, i) => `(${formatAngle(r)}, ${formatAngle(info.dec[i])})`)
    .join(" "));
  panel.replaceChildren(title, fields);
  if (!info.files.length) {
    if (info.kind !== "tract") panel.append(element("p", "no files registered", { class: "hint" }));
    return;
  }
  panel.append(element("h3", "Files"));
  const table = element("table");
  table.append(tableRow("th", ["type", "band", "file", "links"]));
  for (const file of info.files) {
    const links = element("td");
    links.append(anchor("DataLink", file.datalink));
    if (file.file) links.append(" · ", anchor("FITS", file.file));
    if (file.preview) links.append(" · ", anchor("PNG", file.preview));
    const row = tableRow("td", [file.dataset_type, file.band, `${file.uri} [${file.hdu}]`]);
    row.append(links);
    table.append(row);
  }
  panel.append(table);
  const preview = info.files.find((file) => file.preview);
  if (preview) {
    panel.append(element("p", `preview: ${preview.dataset_type}`, { class: "hint" }));
    const image = element("img", null, { id: "preview", alt: `preview of ${preview.id}` });
    image.addEventListener("error", () => { image.replaceWith(element("p", "no preview", { class: "hint" })); });
    image.src = preview.preview;
    panel.append(image);
  }
}

function tableRow(cell, values) {
  const row = element("tr");
  for (const value of values) row.append(element(cell, value));
  return row;
}

function anchor(text, href) { return element("a", text, { href, target: "_blank" }); }

// -- wiring -------------------------------------------------------------------------------------

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = document.getElementById("target").value.trim();
  if (text) showTarget(text);
});
document.getElementById("overview").addEventListener("click", () => showOverview());
document.getElementById("band").addEventListener("change", (event) => {
  state.band = event.target.value;
  if (state.view === "overview") drawOverview(); else applyBand();
});
window.addEventListener("resize", () => {
  if (state.view === "overview") drawOverview();
  else if (state.view === "field") drawField();
});

const start = new URLSearchParams(location.hash.slice(1)).get("q");
if (start) showTarget(start); else showOverview();
