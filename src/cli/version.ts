/** The version `tzorp --version` prints: package.json's, written here (test/unit/cli/build.test.ts keeps
 * them equal) so that printing it reads no file. */
export const VERSION = '0.1.0';
