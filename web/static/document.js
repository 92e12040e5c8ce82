/* The document page: bring the cited quote to the middle of the screen and give it focus. */
(function () {
  "use strict";
  var quote = document.getElementById("quote");
  if (!quote) return;
  function show() {
    quote.scrollIntoView({block: "center"});
    quote.focus({preventScroll: true});
  }
  show();
  /* The browser also scrolls to #quote itself (top of the screen); centre it once that is done. */
  window.addEventListener("load", function () { setTimeout(show, 0); });
})();
