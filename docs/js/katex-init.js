// Typeset the math that pymdownx.arithmatex (generic mode) leaves in the page: \( ... \)
// inline and \[ ... \] as a block, each inside an element of class "arithmatex". KaTeX is
// shipped with the site (js/katex/), so the pages need no network.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".arithmatex").forEach(function (element) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false, // a bad formula shows as a red .katex-error, not a blank page
    });
  });
});
