/* The documents page: add documents (drop or choose files; one request per file, with its own
   progress and result line) and delete them (after a confirmation). Writes that answer 401 ask
   for the server's token once; it is kept in sessionStorage for this tab.
   Everything from the server is inserted with textContent, never as HTML. */
(function () {
  "use strict";

  var panel = document.getElementById("upload");
  var zone = document.getElementById("drop-zone");
  var input = document.getElementById("file-input");
  var list = document.getElementById("upload-list");
  var table = document.getElementById("doc-table");
  var count = document.getElementById("doc-count");
  var status = document.getElementById("doc-status");
  if (!panel || !table) return;

  var maxBytes = parseInt(panel.getAttribute("data-max-bytes"), 10) || 0;
  var maxLabel = panel.getAttribute("data-max-label") || "";
  var TOKEN_KEY = "qa-api-token";
  var queue = [];          // {file, item} waiting to be sent, in order
  var running = false;
  var added = [];          // doc ids added since the table was last refreshed
  var tokenDeclined = false;

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function size(bytes) {
    if (bytes >= 1e6) return (bytes / 1e6).toFixed(1).replace(/\.0$/, "") + " MB";
    if (bytes >= 1e3) return Math.round(bytes / 1e3) + " KB";
    return bytes + " bytes";
  }

  function showStatus(message, ok) {
    status.textContent = message || "";
    status.className = "doc-status " + (ok ? "is-ok" : "is-error");
    status.setAttribute("role", ok ? "status" : "alert");
    status.hidden = !message;
  }

  /* --- the token ------------------------------------------------------------------------ */

  function storedToken() {
    try { return window.sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function forgetToken() {
    try { window.sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ }
  }

  /* Ask for the token after a 401; true when the user gave one. */
  function askToken(detail) {
    if (tokenDeclined) return false;
    var given = window.prompt(detail + "\n\nThe server's token (QA_API_TOKEN), kept for this " +
                              "tab only:");
    if (!given || !given.trim()) {
      tokenDeclined = true;
      return false;
    }
    try { window.sessionStorage.setItem(TOKEN_KEY, given.trim()); } catch (e) { /* kept nowhere */ }
    return true;
  }

  function detailOf(xhr) {
    if (!xhr.status) return "The server did not answer: check that it is running and try again.";
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && typeof body.detail === "string") return body.detail;
    } catch (e) { /* not JSON */ }
    return "The server answered " + xhr.status + " " + (xhr.statusText || "") + ".";
  }

  /* One write request; a 401 asks for the token and sends the request again with it. */
  function send(method, url, body, onProgress, done) {
    var xhr = new XMLHttpRequest();
    var token = storedToken();
    xhr.open(method, url);
    xhr.setRequestHeader("Accept", "application/json");
    if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
    if (onProgress) xhr.upload.addEventListener("progress", onProgress);
    xhr.addEventListener("load", function () {
      if (xhr.status === 401) {
        if (token) forgetToken();  // a wrong or changed token: ask again
        if (askToken(detailOf(xhr))) {
          send(method, url, body, onProgress, done);
          return;
        }
      }
      done(xhr);
    });
    xhr.addEventListener("error", function () { done(xhr); });
    xhr.addEventListener("abort", function () { done(xhr); });
    xhr.send(body);
  }

  /* --- uploads ---------------------------------------------------------------------------- */

  function uploadItem(file) {
    var item = make("li", "upload-item");
    item.setAttribute("data-state", "waiting");
    var head = make("div", "upload-head");
    head.appendChild(make("span", "upload-name", file.name));
    head.appendChild(make("span", "upload-size", size(file.size)));
    item.appendChild(head);
    var bar = make("progress", "upload-progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload of " + file.name);
    item.appendChild(bar);
    item.appendChild(make("p", "upload-message", "Waiting…"));
    list.appendChild(item);
    return item;
  }

  function setItem(item, state, message, percent) {
    item.setAttribute("data-state", state);
    var bar = item.querySelector("progress");
    if (percent === null) bar.removeAttribute("value");  // indeterminate: indexing
    else if (percent !== undefined) bar.value = percent;
    bar.hidden = state === "done" || state === "error";
    var line = item.querySelector(".upload-message");
    line.textContent = "";
    if (typeof message === "string") line.textContent = message;
    else line.appendChild(message);
  }

  function addedLine(doc) {
    var line = document.createDocumentFragment();
    line.appendChild(document.createTextNode("Added as "));
    var link = make("a", null, doc.title);
    link.href = "/documents/" + encodeURIComponent(doc.doc_id);
    line.appendChild(link);
    line.appendChild(document.createTextNode(" · " + doc.n_passages + " passage" +
                                             (doc.n_passages === 1 ? "" : "s")));
    return line;
  }

  function finish(item, xhr) {
    if (xhr.status === 200) {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (body && body.documents && body.documents.length) {
        body.documents.forEach(function (doc) { added.push(doc.doc_id); });
        setItem(item, "done", addedLine(body.documents[0]), 100);
      } else if (body && body.errors && body.errors.length) {
        setItem(item, "error", "Not added: " + body.errors[0].message + ".");
      } else {
        setItem(item, "error", "Not added: the server did not say why; try again.");
      }
    } else if (xhr.status === 401) {
      setItem(item, "error", "Not added: this server needs its token (QA_API_TOKEN): add the " +
              "file again and enter the token when asked.");
    } else {
      setItem(item, "error", "Not added: " + detailOf(xhr));
    }
  }

  function next() {
    var job = queue.shift();
    if (!job) {
      running = false;
      tokenDeclined = false;
      if (added.length) refreshTable();
      return;
    }
    running = true;
    var form = new FormData();
    form.append("files", job.file, job.file.name);
    setItem(job.item, "uploading", "Uploading…", 0);
    send("POST", "/api/documents", form, function (event) {
      if (!event.lengthComputable) return;
      var percent = Math.round(100 * event.loaded / event.total);
      if (percent >= 100) setItem(job.item, "indexing", "Indexing…", null);
      else setItem(job.item, "uploading", "Uploading… " + percent + " %", percent);
    }, function (xhr) {
      finish(job.item, xhr);
      next();
    });
  }

  function enqueue(files) {
    Array.prototype.forEach.call(files, function (file) {
      var item = uploadItem(file);
      if (maxBytes && file.size > maxBytes) {
        setItem(item, "error", "Not added: larger than " + maxLabel +
                " (the server's QA_UPLOAD_MAX_BYTES).");
        return;
      }
      if (!file.size) {
        setItem(item, "error", "Not added: the file is empty.");
        return;
      }
      queue.push({file: file, item: item});
    });
    if (!running) next();
  }

  /* The table and count as the server renders them now, with the new rows marked. */
  function refreshTable() {
    var fresh = added;
    added = [];
    fetch("/documents", {headers: {Accept: "text/html"}}).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.text();
    }).then(function (html) {
      var page = new DOMParser().parseFromString(html, "text/html");
      var body = page.querySelector("#doc-table tbody");
      var counted = page.getElementById("doc-count");
      if (!body || !counted) throw new Error("unexpected page");
      var tbody = document.adoptNode(body);
      Array.prototype.forEach.call(tbody.rows, function (row) {
        if (fresh.indexOf(row.getAttribute("data-doc-id")) >= 0) row.classList.add("is-new");
      });
      table.tBodies[0].replaceWith(tbody);
      count.textContent = counted.textContent;
    }).catch(function () {
      showStatus("Added, but the list could not be refreshed: reload the page.", false);
    });
  }

  input.addEventListener("change", function () {
    if (input.files && input.files.length) enqueue(input.files);
    input.value = "";  // choosing the same file again is a new upload
  });

  zone.addEventListener("click", function (event) {
    if (event.target === zone || event.target.classList.contains("drop-main") ||
        event.target.classList.contains("hint")) input.click();
  });

  /* Files dropped anywhere on the page are uploaded (the browser would otherwise open them). */
  var depth = 0;
  function carriesFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return types && Array.prototype.indexOf.call(types, "Files") >= 0;
  }
  document.addEventListener("dragenter", function (event) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth += 1;
    zone.classList.add("is-over");
  });
  document.addEventListener("dragover", function (event) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", function (event) {
    if (!carriesFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("is-over");
  });
  document.addEventListener("drop", function (event) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    zone.classList.remove("is-over");
    if (event.dataTransfer.files.length) enqueue(event.dataTransfer.files);
  });

  /* --- deleting --------------------------------------------------------------------------- */

  function documentCount() {
    var n = table.tBodies[0].rows.length;
    return n + " document" + (n === 1 ? "" : "s") + " in the index. Answers cite only these.";
  }

  table.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".delete-button") : null;
    if (!button || button.disabled) return;
    var docId = button.getAttribute("data-doc-id");
    var title = button.getAttribute("data-title") || docId;
    if (!window.confirm("Delete \u201c" + title + "\u201d?\n\nIt leaves the index and answers " +
                        "will no longer cite it. An uploaded file is deleted too.")) return;
    button.disabled = true;
    button.textContent = "Deleting…";
    send("DELETE", "/api/documents/" + encodeURIComponent(docId), null, null, function (xhr) {
      tokenDeclined = false;
      var row = button.closest("tr");
      if (xhr.status === 200 || xhr.status === 404) {  // 404: someone else deleted it already
        row.parentNode.removeChild(row);
        count.textContent = documentCount();
        showStatus("Deleted \u201c" + title + "\u201d.", true);
        return;
      }
      button.disabled = false;
      button.textContent = "Delete";
      if (xhr.status === 401) {
        showStatus("\u201c" + title + "\u201d was not deleted: this server needs its token " +
                   "(QA_API_TOKEN); delete again and enter it when asked.", false);
        return;
      }
      showStatus("\u201c" + title + "\u201d was not deleted: " + detailOf(xhr), false);
    });
  });
})();
