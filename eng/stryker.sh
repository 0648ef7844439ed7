#!/usr/bin/env bash
# Runs Stryker.NET mutation testing on one package and fails when its score falls below the <MutationScore> that the
# package's test project records (Polly's model: each package keeps its own number, and it only ratchets up).
#   eng/stryker.sh Scopes        # or Registry, Tasks, Channels, Threading, Actors
# The report lands in artifacts/stryker/<Package>/reports/mutation-report.html.
set -euo pipefail
cd "$(dirname "$0")/.."

package=${1:?usage: eng/stryker.sh <Package>}
project=tests/MicroIo.$package.Tests
score=$(dotnet msbuild "$project/MicroIo.$package.Tests.csproj" -getProperty:MutationScore)
score=${score%%.*}

# src/Shared/**/*.cs is linked into every package (or every package that opts in), but a package that never calls a
# shared type would have that type's mutants counted against it as NoCoverage, for code that is dead in its assembly
# (e.g. Timeouts.cs in Channels and Actors). Leave such files out of this package's run; a package that does call the
# type keeps it, so its tests still have to kill those mutants.
exclude=()
while IFS= read -r file; do
  type=$(basename "$file" .cs)
  if ! grep -rqw --include='*.cs' "$type" "src/MicroIo.$package"; then
    exclude+=(--mutate "!**/Shared/${file#src/Shared/}")
  fi
done < <(find src/Shared -name '*.cs' | sort)

dotnet tool restore
cd "$project"
# Stryker requires break <= low, so the recorded score is both the "low" mark and the break threshold.
dotnet stryker --config-file ../../eng/stryker-config.json "${exclude[@]}" --threshold-low "${score:-80}" --break-at "${score:-80}" --output "../../artifacts/stryker/$package"
