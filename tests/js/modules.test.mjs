// The chat page's modules as files: what imports what (static/js/chat/).
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { describe, it } from "node:test";

const DIR = new URL("../../static/js/chat/", import.meta.url);
const TEMPLATE = new URL("../../templates/assistant/chat.html", import.meta.url);

// The modules that touch no DOM and no globals when imported (main.js lists them too).
const PURE = ["citations.js", "history.js", "model.js", "sanitizing.js", "sources.js", "state.js", "stream.js", "urls.js"];

const modules = readdirSync(DIR).filter((name) => name.endsWith(".js")).sort();
const sources = Object.fromEntries(modules.map((name) => [name, readFileSync(new URL(name, DIR), "utf8")]));

/** The specifiers of a module's static imports (`import ... from "x";` and `import "x";`). */
function importsOf(source) {
  return [...source.matchAll(/^\s*import\s+(?:[^"';]*?\s+from\s+)?["']([^"']+)["'](;?)/gms)].map(([, spec, semi]) => ({ spec, semi }));
}

const graph = Object.fromEntries(modules.map((name) => [name, importsOf(sources[name]).map((i) => i.spec.slice(2))]));

describe("the chat modules", () => {
  it("are loaded by the page through one entry point", () => {
    const template = readFileSync(TEMPLATE, "utf8");
    const scripts = [...template.matchAll(/<script\b[^>]*>/g)].map(([tag]) => tag);
    const modulesLoaded = scripts.filter((tag) => /type="module"/.test(tag));
    assert.deepEqual(modulesLoaded, [`<script src="{% static 'js/chat/main.js' %}" type="module">`]);
    assert.ok(!existsSync(new URL("../chat.js", DIR)), "the old single file is gone");
  });

  it("import one another by relative paths to files that exist, each statement ending in ';'", () => {
    // Django's ManifestStaticFilesStorage rewrites only `./` or `../` paths in statements
    // ending with a semicolon (when its JS module support is on).
    for (const name of modules) {
      for (const { spec, semi } of importsOf(sources[name])) {
        assert.match(spec, /^\.\/[a-z-]+\.js$/, `${name} imports ${spec}`);
        assert.ok(existsSync(new URL(spec, DIR)), `${name} imports ${spec}, which does not exist`);
        assert.equal(semi, ";", `${name}: import of ${spec} lacks its semicolon`);
      }
      assert.doesNotMatch(sources[name], /\bimport\s*\(/, `${name} uses a dynamic import`);
    }
  });

  it("import in no cycle (a hashing static storage could never name the files)", () => {
    const done = new Set();
    const visit = (name, path) => {
      assert.ok(!path.includes(name), "import cycle: " + [...path, name].join(" -> "));
      if (done.has(name)) return;
      for (const next of graph[name]) visit(next, [...path, name]);
      done.add(name);
    };
    for (const name of modules) visit(name, []);
  });

  it("keep the pure modules pure: they import only pure modules and load without a DOM", async () => {
    assert.equal(typeof globalThis.document, "undefined");
    assert.equal(typeof globalThis.window, "undefined");
    for (const name of PURE) {
      for (const dependency of graph[name]) assert.ok(PURE.includes(dependency), `${name} imports ${dependency}`);
      const code = sources[name].replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
      assert.doesNotMatch(code, /\b(?:window|document|navigator|location|history)\s*\./, `${name} uses a browser global`);
      await import(new URL(name, DIR));
    }
  });

  it("read the classic scripts' globals in globals.js only", () => {
    for (const name of modules) {
      if (name === "globals.js") continue;
      assert.doesNotMatch(
        sources[name],
        /window\.(?:marked|DOMPurify|hljs|AppEvents)\b/,
        `${name} reads a vendored library from window`
      );
    }
  });
});
