import { NavLink, Navigate, Route, Routes } from "react-router";
import { StatusPill } from "./ws/StatusPill";
import { ApiKeyField } from "./components/ApiKeyField";
import { ModelPage } from "./pages/Model/ModelPage";
import { TrainPage } from "./pages/Train/TrainPage";
import { FeaturesPage } from "./pages/Features/FeaturesPage";
import { FeatureDetailPage } from "./pages/FeatureDetail/FeatureDetailPage";
import { PatchConsolePage } from "./pages/PatchConsole/PatchConsolePage";
import { ProvenancePage } from "./pages/Provenance/ProvenancePage";
import { ContrastPage } from "./pages/Contrast/ContrastPage";
import { CircuitsPage } from "./pages/Circuits/CircuitsPage";
import { MapPage } from "./pages/Map/MapPage";
import { BehaviourPage } from "./pages/Behaviour/BehaviourPage";

const NAV = [
  ["/model", "Model"],
  ["/train", "Train"],
  ["/features", "Features"],
  ["/map", "Map"],
  ["/patches", "Patch console"],
  ["/provenance", "Provenance"],
  ["/contrast", "Contrast"],
  ["/circuits", "Circuits"],
  ["/behaviour", "Remove behaviour"],
] as const;

export function App() {
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <strong className="brand">Interpretability Workbench</strong>
        <nav aria-label="Main">
          {NAV.map(([to, label]) => (
            <NavLink key={to} to={to}>
              {label}
            </NavLink>
          ))}
        </nav>
        <div className="topbar-right">
          <ApiKeyField />
          <StatusPill />
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Routes>
          <Route path="/" element={<Navigate to="/model" replace />} />
          <Route path="/model" element={<ModelPage />} />
          <Route path="/train" element={<TrainPage />} />
          <Route path="/features" element={<FeaturesPage />} />
          <Route path="/features/:saeId" element={<FeaturesPage />} />
          <Route path="/features/:saeId/:index" element={<FeatureDetailPage />} />
          <Route path="/map" element={<MapPage />} />
          <Route path="/map/:saeId" element={<MapPage />} />
          <Route path="/patches" element={<PatchConsolePage />} />
          <Route path="/provenance" element={<ProvenancePage />} />
          <Route path="/contrast" element={<ContrastPage />} />
          <Route path="/circuits" element={<CircuitsPage />} />
          <Route path="/behaviour" element={<BehaviourPage />} />
          <Route path="*" element={<p>Page not found.</p>} />
        </Routes>
      </main>
    </div>
  );
}
