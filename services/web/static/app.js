// The page's behaviour: upload with progress, the prediction, hashtag chips, search and
// "more like this". No framework, no CDN: everything the page needs is served by reelvec.
"use strict";

const $ = (id) => document.getElementById(id);
let maxBytes = Infinity;

// 1234 -> "1.2k", 1500000 -> "1.5M": readable, never 1234.5678
function compact(n) {
  if (n === null || n === undefined) return "-";
  const abs = Math.abs(n);
  for (const [size, unit] of [[1e9, "B"], [1e6, "M"], [1e3, "k"]]) {
    if (abs >= size) {
      const value = n / size;
      return (value >= 100 ? value.toFixed(0) : value.toFixed(1).replace(/\.0$/, "")) + unit;
    }
  }
  return Math.round(n).toString();
}

function readOriginality(score, duplicate) {
  if (duplicate) return "A near-duplicate of a video that is already there";
  if (score >= 0.8) return "Very original: little like it in the corpus";
  if (score >= 0.5) return "Fairly original: a few similar videos exist";
  if (score >= 0.25) return "Familiar: close to several existing videos";
  return "Very close to existing videos";
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// 26.9 -> "0:26": a position the way a video player writes it, whole seconds elapsed (as the CLI)
function clock(seconds) {
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

// A stored video's thumbnail as a button that puts the video itself in its place, playing from
// `start` seconds: a media fragment, which works because the page serves files with ranges.
function player(video, start = 0) {
  const name = video.caption || video.id;
  const img = document.createElement("img");
  img.src = video.thumbnail;
  img.alt = video.caption ? `Thumbnail: ${video.caption}` : `Thumbnail of ${video.id}`;
  img.loading = "lazy";
  const play = document.createElement("button");
  play.type = "button";
  play.className = "play";
  play.setAttribute("aria-label", start ? `Play ${name} from ${clock(start)}` : `Play ${name}`);
  play.append(img);
  play.addEventListener("click", () => {
    const element = document.createElement("video");
    element.src = start ? `${video.file}#t=${start}` : video.file;
    element.controls = true;
    element.autoplay = true;
    element.playsInline = true;
    play.replaceWith(element);
    element.focus();
  });
  return play;
}

function card(hit) {
  const item = document.createElement("article");
  item.className = "video";
  item.dataset.id = hit.id;
  const play = player(hit);
  const meta = document.createElement("div");
  meta.className = "meta";
  const caption = document.createElement("div");
  caption.className = "caption";
  caption.textContent = hit.caption || hit.id;
  const facts = document.createElement("div");
  facts.className = "small";
  const views = hit.views === null || hit.views === undefined ? "" : ` · ${compact(hit.views)} views`;
  facts.textContent = `${compact(hit.likes)} likes${views} · match ${Math.round(hit.score * 100)}%`;
  meta.append(caption, facts);
  const more = document.createElement("button");
  more.type = "button";
  more.className = "more";
  more.textContent = "More like this";
  more.addEventListener("click", () => loadGrid(`/api/videos/${encodeURIComponent(hit.id)}/similar`,
                                                 `Videos like “${hit.caption || hit.id}”`));
  item.append(play, meta, more);
  return item;
}

function fillGrid(hits, title) {
  $("grid-title").textContent = hits.length ? title : `${title}: nothing found`;
  $("grid").replaceChildren(...hits.map(card));
}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function loadGrid(url, title) {
  showError("");
  try {
    fillGrid((await getJSON(url)).hits, title);
  } catch (err) {
    showError(err.message);
  }
}

// One row per copied stretch: which seconds of the clip match which seconds of a stored video,
// with that video's thumbnail, which plays it from the first copied second.
function copyRows(copies) {
  return copies.flatMap((copy) => copy.segments.map((segment) => {
    const row = document.createElement("li");
    row.className = "copy";
    row.dataset.id = copy.id;
    const text = document.createElement("p");
    text.textContent = `${clock(segment.query_start)}-${clock(segment.query_end)} of your clip matches ` +
      `${clock(segment.ref_start)}-${clock(segment.ref_end)} of ${copy.caption || copy.id}`;
    const score = document.createElement("span");
    score.className = "small";
    score.textContent = ` (match ${Math.round(segment.score * 100)}%)`;
    text.append(score);
    row.append(player(copy, segment.ref_start), text);
    return row;
  }));
}

function showPrediction(result) {
  $("result").hidden = false;
  $("likes").textContent = compact(result.likes);
  $("likes-range").textContent = `likely ${compact(result.likes_low)} – ${compact(result.likes_high)}`;
  // no views model until the indexed videos carry view counts: the block stays hidden
  $("views-block").hidden = !result.views;
  $("views").textContent = result.views ? compact(result.views.value) : "";
  $("views-range").textContent = result.views ?
    `likely ${compact(result.views.low)} – ${compact(result.views.high)}` : "";
  $("originality").textContent = `${Math.round(result.originality * 100)}%`;
  $("originality-reading").textContent = readOriginality(result.originality, result.near_duplicate_of);
  $("duplicate").hidden = !result.near_duplicate_of;
  $("duplicate").textContent = result.near_duplicate_of ? `Near-duplicate of ${result.near_duplicate_of}` : "";
  $("copies-block").hidden = !result.copies.length;
  $("copies").replaceChildren(...copyRows(result.copies));
  const chips = result.hashtags.map((tag) => {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.textContent = `#${tag}`;
    chip.addEventListener("click", () => {
      const field = $("caption");
      field.value = `${field.value.trim()} #${tag}`.trim();
      chip.disabled = true;
    });
    return chip;
  });
  $("suggestions").replaceChildren(...chips);
  $("transcript").textContent = result.transcript.text || "(no speech found)";
  fillGrid(result.similar, "Similar videos");
}

function setBusy(busy, text) {
  $("analyze").disabled = busy;
  $("progress").hidden = !busy;
  $("progress-text").textContent = text || "";
}

function upload(form) {
  const file = $("video").files[0];
  if (!file) return showError("Choose a video file first.");
  if (file.size > maxBytes) {
    return showError(`That file is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${maxBytes / 2 ** 20} MB.`);
  }
  showError("");
  const request = new XMLHttpRequest();
  request.open("POST", "/api/predict");
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) $("progress-bar").value = (100 * event.loaded) / event.total;
    $("progress-text").textContent = "Uploading…";
  };
  request.upload.onload = () => {
    $("progress-bar").removeAttribute("value"); // indeterminate while the clip is analyzed
    $("progress-text").textContent = "Analyzing the clip…";
  };
  request.onload = () => {
    setBusy(false);
    let body = {};
    try { body = JSON.parse(request.responseText); } catch (err) { body = { error: "The server answered in a way the page cannot read." }; }
    if (request.status !== 200) return showError(body.error || `The upload failed (${request.status}).`);
    showPrediction(body);
  };
  request.onerror = () => { setBusy(false); showError("The server could not be reached."); };
  setBusy(true, "Uploading…");
  request.send(new FormData(form));
}

function wireDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) {
      $("video").files = event.dataTransfer.files;
      $("drop-text").textContent = event.dataTransfer.files[0].name;
    }
  });
  $("video").addEventListener("change", () => {
    if ($("video").files[0]) $("drop-text").textContent = $("video").files[0].name;
  });
}

document.addEventListener("DOMContentLoaded", async () => {
  wireDrop();
  $("upload").addEventListener("submit", (event) => { event.preventDefault(); upload(event.target); });
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("query").value.trim();
    if (text) loadGrid(`/api/search?text=${encodeURIComponent(text)}`, `Videos about “${text}”`);
  });
  try {
    maxBytes = (await getJSON("/api/config")).max_video_mb * 2 ** 20;
  } catch (err) {
    showError("The page could not reach its server.");
  }
});
