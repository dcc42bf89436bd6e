// The package version, read once from package.json (works from src/ through tsx and from dist/).
import { readFileSync } from "node:fs";

function findVersion(): string {
  for (const rel of ["../../package.json", "../package.json"]) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { version: string }).version;
    } catch {
      // try the next location
    }
  }
  return "0.0.0";
}

export const PACKAGE_VERSION = findVersion();
